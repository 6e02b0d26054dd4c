-- requires: 0004_multi_tenant
-- Repeatable: applied by `bangkok-pipeline db migrate` after the versioned migrations, again
-- whenever this file changes (sql/README.md, "Repeatable objects"). Edit the function here.

-- A building's energy per day, in total and per load kind; at most 731 days.
CREATE OR REPLACE FUNCTION api.building_daily_totals(p_building_id integer, p_first_day date,
                                                     p_last_day date)
RETURNS TABLE (day date, energy_kwh double precision, ac_kwh double precision,
               light_kwh double precision, plug_kwh double precision, sensors integer)
LANGUAGE plpgsql STABLE SECURITY INVOKER SET search_path = ''
AS $$
#variable_conflict use_column
DECLARE
    v_building smallint := private.checked_id('p_building_id', p_building_id);
BEGIN
    PERFORM private.check_days(p_first_day, p_last_day, 731);
    RETURN QUERY
    SELECT d.day, sum(d.energy_kwh),
           sum(d.energy_kwh) FILTER (WHERE s.kind = 'ac'),
           sum(d.energy_kwh) FILTER (WHERE s.kind = 'light'),
           sum(d.energy_kwh) FILTER (WHERE s.kind = 'plug'),
           count(*)::integer
    FROM public.sensors AS s
    JOIN public.daily_sensor_stats AS d ON d.sensor_id = s.sensor_id
    WHERE s.building_id = v_building AND s.unit = 'kW'
      AND d.day BETWEEN p_first_day AND p_last_day
    GROUP BY d.day
    ORDER BY d.day;
END
$$;

-- Ownership and privileges as migration 0004 set them (no-ops when they are already so).
ALTER FUNCTION api.building_daily_totals(integer, date, date) OWNER TO bangkok_owner;
REVOKE ALL ON FUNCTION api.building_daily_totals(integer, date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.building_daily_totals(integer, date, date) TO bangkok_api;
