-- Locks no API role can take. PostgreSQL's advisory locks need no privilege: any login, a
-- tenant's API role included, could hold the month loads' key, the migrators' key or the sensor
-- masks' key for as long as it liked and stall loads, sensor registration or migrations.
-- sql/README.md ("Locks") describes every lock the pipeline takes.

-- The month lock: one row per month that was ever locked. A load, premake, archive or restore of
-- a month holds its row FOR UPDATE in a transaction on a connection of its own for as long as it
-- works (bangkok_pipeline/lib/month_lock.py); when its process dies the server ends that
-- transaction and the month is free again. A side table: bangkok_loader reads, adds and locks rows
-- (FOR UPDATE needs the UPDATE privilege), bangkok_api and PUBLIC get nothing, so they can neither
-- lock a row nor insert (and hold uncommitted) the row of a month not yet locked.
CREATE TABLE month_locks (
    month date PRIMARY KEY CHECK (extract(day FROM month) = 1)
);
ALTER TABLE month_locks OWNER TO bangkok_owner;
GRANT SELECT, INSERT, UPDATE ON month_locks TO bangkok_loader;

-- Sensor registrations (the statement trigger on `sensors`) queued on an advisory key. They queue
-- now on a SHARE UPDATE EXCLUSIVE lock of the masks table instead: it conflicts with itself, and
-- a role without privileges on the table cannot get it (LOCK TABLE, VACUUM, ANALYZE, CREATE INDEX
-- and ALTER check privileges before they lock; parsing a statement, the one way to hold a lock on
-- a table without privileges, takes at most ROW EXCLUSIVE, which does not conflict with it).
-- The owner, bangkok_owner, runs the function; its ownership and grants stay as 0004 made them.
CREATE OR REPLACE FUNCTION private.refresh_sensor_masks() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ''
AS $$
BEGIN
    -- Concurrent registrations queue here, so each recomputation sees the ones before it.
    LOCK TABLE private.building_sensor_masks IN SHARE UPDATE EXCLUSIVE MODE;
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
