-- Undo 0009: only while no month is compressed (the downgrade would lose its readings):
-- `bangkok-pipeline db decompress --months ...` first.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = 'sensor_readings_days'::regclass) THEN
        RAISE EXCEPTION 'compressed months exist: run bangkok-pipeline db decompress for them first'
            USING ERRCODE = 'object_in_use';
    END IF;
END
$$;

-- The repeatables written for the two tiers (sql/functions/, `-- requires: 0009_readings_tiers`):
-- api.sensor_series goes back to 0004's definition, the others go; their records go too, so the
-- next upgrade applies them again.
DROP FUNCTION IF EXISTS public.sensor_readings_between(timestamptz, timestamptz);
DROP FUNCTION IF EXISTS public.hourly_stats_between(timestamptz, timestamptz);
DROP FUNCTION IF EXISTS private.minute_slots(integer[], real[]);
DELETE FROM schema_repeatables
WHERE name IN ('api.sensor_series', 'public.sensor_readings_between',
               'public.hourly_stats_between', 'private.minute_slots');

CREATE OR REPLACE VIEW hourly_aggregates WITH (security_invoker = true) AS
SELECT h.bucket, h.sensor_id, s.floor, s.zone, s.channel, s.kind, s.unit,
       h.n AS readings, h.avg_value, h.min_value, h.max_value, h.energy_kwh
FROM hourly_sensor_stats AS h
JOIN sensors AS s USING (sensor_id);
DROP VIEW hourly_sensor_stats_compressed;
REVOKE SELECT ON archived_months FROM bangkok_loader;
DROP VIEW sensor_readings;
DROP TABLE sensor_readings_days;

DO $$
DECLARE
    part record;
BEGIN
    FOR part IN
        SELECT c.relname FROM pg_class AS c
        WHERE c.relnamespace = 'partitions'::regnamespace AND c.relkind IN ('r', 'p')
          AND c.relname ~ '^sensor_readings_rows_y[0-9]{4}m[0-9]{2}'
    LOOP
        EXECUTE format('ALTER TABLE partitions.%I RENAME TO %I', part.relname,
                       'sensor_readings' || substr(part.relname, 21));
    END LOOP;
END
$$;
ALTER INDEX sensor_readings_rows_ts_brin RENAME TO sensor_readings_ts_brin;
ALTER INDEX sensor_readings_rows_sensor_ts_brin RENAME TO sensor_readings_sensor_ts_brin;
ALTER TABLE sensor_readings_rows RENAME TO sensor_readings;

-- 0004's api.sensor_series, reading the table again.
CREATE OR REPLACE FUNCTION api.sensor_series(p_sensor_id integer, p_from timestamptz,
                                             p_to timestamptz, p_bucket text DEFAULT 'hour')
RETURNS TABLE (bucket timestamptz, readings integer, avg_value double precision,
               min_value real, max_value real, energy_kwh double precision)
LANGUAGE plpgsql STABLE SECURITY INVOKER SET search_path = ''
AS $$
#variable_conflict use_column
DECLARE
    v_sensor smallint := private.checked_id('p_sensor_id', p_sensor_id);
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
        RETURN QUERY
        SELECT r.ts, 1, r.value::float8, r.value, r.value,
               CASE WHEN v_unit = 'kW' THEN r.value::float8 / 60 END
        FROM public.sensor_readings AS r
        WHERE r.sensor_id = v_sensor AND r.ts >= p_from AND r.ts < p_to
        ORDER BY r.ts;
    ELSIF p_bucket = 'hour' THEN
        RETURN QUERY
        SELECT h.bucket, h.n, h.avg_value, h.min_value, h.max_value, h.energy_kwh
        FROM public.hourly_sensor_stats AS h
        WHERE h.sensor_id = v_sensor AND h.bucket >= p_from AND h.bucket < p_to
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
