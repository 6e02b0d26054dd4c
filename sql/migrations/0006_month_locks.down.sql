-- Undo 0006: the month lock's table goes, and sensor registrations queue on 0004's advisory key
-- again (the code of this version no longer uses the table; older code takes advisory locks).
DROP TABLE month_locks;

CREATE OR REPLACE FUNCTION private.refresh_sensor_masks() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ''
AS $$
BEGIN
    -- Concurrent registrations queue here, so each recomputation sees the ones before it.
    PERFORM pg_advisory_xact_lock(hashtext('bangkok_pipeline.building_sensor_masks'));
    INSERT INTO private.building_sensor_masks AS m (building_id, tier, mask)
    SELECT b.building_id, t.tier,
           string_agg(CASE WHEN s.sensor_id IS NOT NULL
                            AND (t.tier = 'professional' OR s.free_sample) THEN '1' ELSE '0' END,
                      '' ORDER BY i.id)::varbit::bit(32768)  -- zero-padded on the right
    FROM (SELECT DISTINCT building_id FROM public.sensors) AS b
    CROSS JOIN (VALUES ('free'), ('professional')) AS t(tier)
    CROSS JOIN generate_series(0, (SELECT max(sensor_id) FROM public.sensors)) AS i(id)
    LEFT JOIN public.sensors AS s ON s.sensor_id = i.id AND s.building_id = b.building_id
    GROUP BY b.building_id, t.tier
    ON CONFLICT (building_id, tier) DO UPDATE SET mask = excluded.mask
    WHERE m.mask IS DISTINCT FROM excluded.mask;
    DELETE FROM private.building_sensor_masks AS m
    WHERE NOT EXISTS (SELECT 1 FROM public.sensors AS s WHERE s.building_id = m.building_id);
END
$$;
