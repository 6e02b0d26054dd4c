-- requires: 0004_multi_tenant
-- Repeatable: applied by `bangkok-pipeline db migrate` after the versioned migrations, again
-- whenever this file changes (sql/README.md, "Repeatable objects"). Edit the function here.

-- Temperature (degC) and relative humidity (%) per zone over the days, from the daily
-- aggregates (averages weighted by readings); at most 366 days.
CREATE OR REPLACE FUNCTION api.zone_comfort(p_building_id integer, p_first_day date,
                                            p_last_day date)
RETURNS TABLE (floor smallint, zone smallint, avg_temperature double precision,
               min_temperature real, max_temperature real, avg_humidity double precision,
               min_humidity real, max_humidity real, days integer)
LANGUAGE plpgsql STABLE SECURITY INVOKER SET search_path = ''
AS $$
#variable_conflict use_column
DECLARE
    v_building smallint := private.checked_id('p_building_id', p_building_id);
BEGIN
    PERFORM private.check_days(p_first_day, p_last_day, 366);
    RETURN QUERY
    SELECT s.floor, s.zone,
           sum(d.avg_value * d.n) FILTER (WHERE s.kind = 'temperature')
               / sum(d.n) FILTER (WHERE s.kind = 'temperature'),
           min(d.min_value) FILTER (WHERE s.kind = 'temperature'),
           max(d.max_value) FILTER (WHERE s.kind = 'temperature'),
           sum(d.avg_value * d.n) FILTER (WHERE s.kind = 'humidity')
               / sum(d.n) FILTER (WHERE s.kind = 'humidity'),
           min(d.min_value) FILTER (WHERE s.kind = 'humidity'),
           max(d.max_value) FILTER (WHERE s.kind = 'humidity'),
           count(DISTINCT d.day)::integer
    FROM public.sensors AS s
    JOIN public.daily_sensor_stats AS d ON d.sensor_id = s.sensor_id
    WHERE s.building_id = v_building AND s.kind IN ('temperature', 'humidity')
      AND d.day BETWEEN p_first_day AND p_last_day
    GROUP BY s.floor, s.zone
    ORDER BY s.floor, s.zone;
END
$$;

-- Ownership and privileges as migration 0004 set them (no-ops when they are already so).
ALTER FUNCTION api.zone_comfort(integer, date, date) OWNER TO bangkok_owner;
REVOKE ALL ON FUNCTION api.zone_comfort(integer, date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.zone_comfort(integer, date, date) TO bangkok_api;
