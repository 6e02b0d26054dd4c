-- requires: 0010_many_buildings
-- Repeatable: applied by `bangkok-pipeline db migrate` after the versioned migrations, again
-- whenever this file changes (sql/README.md, "Repeatable objects"). Edit the function here.

-- Latest reading of every sensor of a building (the newest loaded month that has the sensor).
CREATE OR REPLACE FUNCTION api.latest_readings(p_building_id integer)
RETURNS TABLE (sensor_id integer, floor smallint, zone smallint, channel text, kind text,
               unit text, ts timestamptz, value real)
LANGUAGE plpgsql STABLE SECURITY INVOKER SET search_path = ''
AS $$
#variable_conflict use_column
DECLARE
    v_building smallint := private.checked_id('p_building_id', p_building_id);
BEGIN
    RETURN QUERY
    SELECT s.sensor_id, s.floor, s.zone, s.channel, s.kind, s.unit, l.ts, l.value
    FROM public.sensors AS s
    CROSS JOIN LATERAL (
        SELECT x.ts, x.value FROM public.sensor_latest_readings AS x
        WHERE x.sensor_id = s.sensor_id
        ORDER BY x.month DESC
        LIMIT 1
    ) AS l
    WHERE s.building_id = v_building
    ORDER BY s.sensor_id;
END
$$;

-- Ownership and privileges as migration 0004 set them (no-ops when they are already so).
ALTER FUNCTION api.latest_readings(integer) OWNER TO bangkok_owner;
REVOKE ALL ON FUNCTION api.latest_readings(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.latest_readings(integer) TO bangkok_api;
