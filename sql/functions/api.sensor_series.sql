-- requires: 0010_many_buildings
-- Repeatable: applied by `bangkok-pipeline db migrate` after the versioned migrations, again
-- whenever this file changes (sql/README.md, "Repeatable objects"). Edit the function here.

-- One sensor between p_from (inclusive) and p_to (exclusive). raw: every reading (at most 31
-- days); hour / day: the aggregates whose bucket starts in the window (at most 366 /
-- 3660 days), days being Bangkok calendar days. energy_kwh only for kW channels.
CREATE OR REPLACE FUNCTION api.sensor_series(p_sensor_id integer, p_from timestamptz,
                                             p_to timestamptz, p_bucket text DEFAULT 'hour')
RETURNS TABLE (bucket timestamptz, readings integer, avg_value double precision,
               min_value real, max_value real, energy_kwh double precision)
LANGUAGE plpgsql STABLE SECURITY INVOKER SET search_path = ''
AS $$
#variable_conflict use_column
DECLARE
    v_sensor integer := private.checked_sensor_id('p_sensor_id', p_sensor_id);
    v_unit text;
    v_first date;
    v_last date;
BEGIN
    IF p_bucket IS NULL OR p_bucket NOT IN ('raw', 'hour', 'day') THEN
        RAISE EXCEPTION 'p_bucket must be raw, hour or day, got %',
            coalesce(quote_literal(left(p_bucket, 40)), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM private.check_period(p_from, p_to, CASE p_bucket
        WHEN 'raw' THEN interval '31 days' WHEN 'hour' THEN interval '366 days'
        ELSE interval '3660 days' END);
    IF p_bucket = 'raw' THEN
        SELECT s.unit INTO v_unit FROM public.sensors AS s WHERE s.sensor_id = v_sensor;
        -- Both tiers, each pruned to the period (sensor_readings_between, inlined here).
        RETURN QUERY
        SELECT r.ts, 1, r.value::float8, r.value, r.value,
               CASE WHEN v_unit = 'kW' THEN r.value::float8 / 60 END
        FROM public.sensor_readings_between(p_from, p_to) AS r
        WHERE r.sensor_id = v_sensor
        ORDER BY r.ts;
    ELSIF p_bucket = 'hour' THEN
        -- Stored hours and those computed from compressed days (hourly_stats_between, inlined).
        RETURN QUERY
        SELECT h.bucket, h.n, h.avg_value, h.min_value, h.max_value, h.energy_kwh
        FROM public.hourly_stats_between(p_from, p_to) AS h
        WHERE h.sensor_id = v_sensor
        ORDER BY h.bucket;
    ELSE
        v_first := (p_from AT TIME ZONE 'Asia/Bangkok')::date;
        IF v_first::timestamp AT TIME ZONE 'Asia/Bangkok' < p_from THEN
            v_first := v_first + 1;
        END IF;
        v_last := (p_to AT TIME ZONE 'Asia/Bangkok')::date;
        IF v_last::timestamp AT TIME ZONE 'Asia/Bangkok' >= p_to THEN
            v_last := v_last - 1;
        END IF;
        RETURN QUERY
        SELECT d.day::timestamp AT TIME ZONE 'Asia/Bangkok', d.n, d.avg_value, d.min_value,
               d.max_value, d.energy_kwh
        FROM public.daily_sensor_stats AS d
        WHERE d.sensor_id = v_sensor AND d.day BETWEEN v_first AND v_last
        ORDER BY d.day;
    END IF;
END
$$;

-- Ownership and privileges as migration 0004 set them (no-ops when they are already so).
ALTER FUNCTION api.sensor_series(integer, timestamptz, timestamptz, text) OWNER TO bangkok_owner;
REVOKE ALL ON FUNCTION api.sensor_series(integer, timestamptz, timestamptz, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.sensor_series(integer, timestamptz, timestamptz, text) TO bangkok_api;
