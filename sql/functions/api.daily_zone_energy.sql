-- requires: 0004_multi_tenant
-- Repeatable: applied by `bangkok-pipeline db migrate` after the versioned migrations, again
-- whenever this file changes (sql/README.md, "Repeatable objects"). Edit the function here.

-- Energy (kWh) per day, floor and zone of a building, with each floor's total in the rows whose
-- zone is NULL; days p_first_day..p_last_day inclusive, at most 366.
CREATE OR REPLACE FUNCTION api.daily_zone_energy(p_building_id integer, p_first_day date,
                                                 p_last_day date)
RETURNS TABLE (day date, floor smallint, zone smallint, energy_kwh double precision,
               sensors integer)
LANGUAGE plpgsql STABLE SECURITY INVOKER SET search_path = ''
AS $$
#variable_conflict use_column
DECLARE
    v_building smallint := private.checked_id('p_building_id', p_building_id);
BEGIN
    PERFORM private.check_days(p_first_day, p_last_day, 366);
    RETURN QUERY
    SELECT d.day, s.floor, s.zone, sum(d.energy_kwh), count(*)::integer
    FROM public.sensors AS s
    JOIN public.daily_sensor_stats AS d ON d.sensor_id = s.sensor_id
    WHERE s.building_id = v_building AND s.unit = 'kW'
      AND d.day BETWEEN p_first_day AND p_last_day
    GROUP BY GROUPING SETS ((d.day, s.floor, s.zone), (d.day, s.floor))
    ORDER BY d.day, s.floor, s.zone NULLS FIRST;
END
$$;

-- Ownership and privileges as migration 0004 set them (no-ops when they are already so).
ALTER FUNCTION api.daily_zone_energy(integer, date, date) OWNER TO bangkok_owner;
REVOKE ALL ON FUNCTION api.daily_zone_energy(integer, date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.daily_zone_energy(integer, date, date) TO bangkok_api;
