-- Many buildings (sql/README.md, "Sensor ids and buildings"). Sensor ids become `integer`, each
-- building drawing from its own block of 32,768: building b's sensors are
-- (b - 1) * 32768 + 1 .. (b - 1) * 32768 + 32767, so `sensor_id % 32768` is a sensor's number in
-- its building and `sensor_id / 32768 + 1` its building. The ids already there (building 1's,
-- 1..32767) keep their values. Row Level Security keeps one get_bit per row: the caller's masks,
-- one 32,768-bit mask per visible building, come as an array indexed by building id.
-- A building also records where its files come from (`bangkok-pipeline buildings add`).

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM public.sensors
               WHERE sensor_id / 32768 <> building_id - 1 OR sensor_id % 32768 = 0) THEN
        RAISE EXCEPTION 'sensors of buildings other than the first exist with ids outside their '
            'building''s block; renumber them (or load into a fresh database) before 0010'
            USING ERRCODE = 'object_in_use';
    END IF;
END
$$;

ALTER TABLE buildings ADD COLUMN source text;
COMMENT ON COLUMN buildings.source IS
    'Folder or fsspec URL of the building''s CU-BEMS-format files; NULL = the configured source';

-- Policies and views that read sensor_id: detached while its type changes, then rebuilt.
ALTER POLICY api_read ON sensors USING (false);
ALTER POLICY api_read ON sensor_readings_rows USING (false);
ALTER POLICY api_read ON sensor_readings_days USING (false);
ALTER POLICY api_read ON hourly_sensor_stats USING (false);
ALTER POLICY api_read ON daily_sensor_stats USING (false);
ALTER POLICY api_read ON sensor_latest_readings USING (false);
ALTER POLICY api_author_insert ON annotations WITH CHECK (false);
ALTER POLICY api_author_update ON annotations WITH CHECK (false);
DROP VIEW hourly_aggregates, daily_aggregates, daily_floor_energy, sensor_readings,
    hourly_sensor_stats_compressed;
-- Their result types change, so CREATE OR REPLACE cannot; the repeatables (sql/functions/, now
-- `-- requires: 0010_many_buildings`) create them again after this step.
DROP FUNCTION IF EXISTS api.latest_readings(integer);
DROP FUNCTION IF EXISTS public.sensor_readings_between(timestamptz, timestamptz);
DROP FUNCTION IF EXISTS public.hourly_stats_between(timestamptz, timestamptz);
DELETE FROM schema_repeatables
WHERE name IN ('api.latest_readings', 'api.sensor_series', 'public.sensor_readings_between',
               'public.hourly_stats_between');

ALTER TABLE sensors ALTER COLUMN sensor_id DROP IDENTITY;
ALTER TABLE sensors ALTER COLUMN sensor_id TYPE integer;
ALTER TABLE sensors ADD CONSTRAINT sensors_id_in_building_block
    CHECK (sensor_id / 32768 = building_id - 1 AND sensor_id % 32768 <> 0);
ALTER TABLE sensor_readings_rows ALTER COLUMN sensor_id TYPE integer;
ALTER TABLE sensor_readings_days ALTER COLUMN sensor_id TYPE integer;
ALTER TABLE hourly_sensor_stats ALTER COLUMN sensor_id TYPE integer;
ALTER TABLE daily_sensor_stats ALTER COLUMN sensor_id TYPE integer;
ALTER TABLE sensor_latest_readings ALTER COLUMN sensor_id TYPE integer;
ALTER TABLE reconciliation ALTER COLUMN sensor_id TYPE integer;
ALTER TABLE sensor_coverage ALTER COLUMN sensor_id TYPE integer;
ALTER TABLE reading_gaps ALTER COLUMN sensor_id TYPE integer;
ALTER TABLE annotations ALTER COLUMN sensor_id TYPE integer;

-- A new sensor takes the next number of its building's block. Registrations queue on the masks'
-- table lock (0006: a lock no API login can take, unlike an advisory key), and the number is read
-- once it is held (a trigger's query sees what committed before it), so two never draw one id.
CREATE FUNCTION private.next_sensor_id() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ''
AS $$
DECLARE
    v_first integer := (NEW.building_id - 1) * 32768;
BEGIN
    LOCK TABLE private.building_sensor_masks IN SHARE UPDATE EXCLUSIVE MODE;
    SELECT coalesce(max(s.sensor_id), v_first) + 1 INTO NEW.sensor_id
    FROM public.sensors AS s
    WHERE s.sensor_id > v_first AND s.sensor_id < v_first + 32768;
    IF NEW.sensor_id % 32768 = 0 THEN
        RAISE EXCEPTION 'building % already has 32,767 sensors, the most one building may have',
            NEW.building_id USING ERRCODE = 'program_limit_exceeded';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER sensors_next_id BEFORE INSERT ON sensors
    FOR EACH ROW EXECUTE FUNCTION private.next_sensor_id();

-- Bit n of a building's mask is its sensor number n (sensor_id % 32768). Only the buildings
-- whose sensors a statement changed are recomputed (NULL: every building), and a statement that
-- changed no row recomputes nothing: every load registers its floors again, so with 0004's
-- statement trigger, which recomputed every building's masks each time, a no-op registration
-- cost ~50 ms at 100 buildings and grew with each building added.
CREATE FUNCTION private.refresh_sensor_masks(p_buildings smallint[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ''
AS $$
DECLARE
    -- A list, not `p_buildings IS NULL OR ...` in the statements, which defeats the indexes.
    v_buildings smallint[] := coalesce(p_buildings, ARRAY(
        SELECT building_id FROM public.sensors
        UNION SELECT building_id FROM private.building_sensor_masks));
BEGIN
    -- Concurrent registrations queue here, so each recomputation sees the ones before it.
    LOCK TABLE private.building_sensor_masks IN SHARE UPDATE EXCLUSIVE MODE;
    -- Each sensor ORs its bit into its building's masks: work in proportion to the building's
    -- sensors (0006's generate_series join hashed every sensor of every building).
    INSERT INTO private.building_sensor_masks AS m (building_id, tier, mask)
    SELECT s.building_id, t.tier,
           bit_or(CASE WHEN t.tier = 'professional' OR s.free_sample
                       THEN set_bit(B'0'::bit(32768), s.sensor_id % 32768, 1)
                       ELSE B'0'::bit(32768) END)
    FROM public.sensors AS s
    CROSS JOIN (VALUES ('free'), ('professional')) AS t(tier)
    WHERE s.building_id = ANY (v_buildings)
    GROUP BY s.building_id, t.tier
    ON CONFLICT (building_id, tier) DO UPDATE SET mask = excluded.mask
    WHERE m.mask IS DISTINCT FROM excluded.mask;
    DELETE FROM private.building_sensor_masks AS m
    WHERE m.building_id = ANY (v_buildings)
      AND NOT EXISTS (SELECT 1 FROM public.sensors AS s WHERE s.building_id = m.building_id);
END
$$;

CREATE OR REPLACE FUNCTION private.refresh_sensor_masks() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = ''
AS $$
    SELECT private.refresh_sensor_masks(NULL)
$$;

-- The buildings of the rows a statement inserted (`added`), deleted (`removed`) or updated
-- (both), from the triggers' transition tables.
CREATE FUNCTION private.sensor_rows_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ''
AS $$
DECLARE
    v_buildings smallint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(DISTINCT a.building_id) INTO v_buildings FROM added AS a;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(DISTINCT r.building_id) INTO v_buildings FROM removed AS r;
    ELSE
        SELECT array_agg(DISTINCT c.building_id) INTO v_buildings
        FROM (SELECT building_id FROM added UNION SELECT building_id FROM removed) AS c;
    END IF;
    IF v_buildings IS NOT NULL THEN
        PERFORM private.refresh_sensor_masks(v_buildings);
    END IF;
    RETURN NULL;
END
$$;
DROP TRIGGER sensors_refresh_masks ON sensors;
CREATE TRIGGER sensors_added_refresh_masks AFTER INSERT ON sensors
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION private.sensor_rows_changed();
CREATE TRIGGER sensors_removed_refresh_masks AFTER DELETE ON sensors
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION private.sensor_rows_changed();
CREATE TRIGGER sensors_updated_refresh_masks AFTER UPDATE ON sensors
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION private.sensor_rows_changed();
CREATE TRIGGER sensors_truncated_refresh_masks AFTER TRUNCATE ON sensors
    FOR EACH STATEMENT EXECUTE FUNCTION private.sensors_changed();
SELECT private.refresh_sensor_masks(NULL);

-- The sensors the caller may see: element b is the OR of its subscriptions' masks of building b
-- (NULL, or out of the array's bounds, where it has none). A policy tests a row with
-- get_bit(masks[sensor_id / 32768 + 1], sensor_id % 32768): one subscript and one get_bit, so
-- still O(1) per row; NULL hides the row.
CREATE FUNCTION private.visible_sensor_masks() RETURNS varbit[]
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
AS $$
DECLARE
    v_masks varbit[];
    v_row record;
BEGIN
    FOR v_row IN
        SELECT m.building_id, bit_or(m.mask) AS mask
        FROM private.active_subscriptions() AS a
        JOIN private.building_sensor_masks AS m
            ON m.building_id = a.building_id AND m.tier = a.tier
        GROUP BY m.building_id
        ORDER BY m.building_id
    LOOP
        v_masks[v_row.building_id] := v_row.mask;
    END LOOP;
    RETURN v_masks;
END
$$;

CREATE FUNCTION private.checked_sensor_id(p_name text, p_value integer) RETURNS integer
LANGUAGE plpgsql IMMUTABLE SET search_path = ''
AS $$
BEGIN
    IF p_value IS NULL THEN
        RAISE EXCEPTION '% must not be null', p_name USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_value < 1 THEN
        RAISE EXCEPTION '% must be a sensor id (1 or more), got %', p_name, p_value
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN p_value;
END
$$;
ALTER FUNCTION private.next_sensor_id() OWNER TO bangkok_owner;
ALTER FUNCTION private.refresh_sensor_masks(smallint[]) OWNER TO bangkok_owner;
ALTER FUNCTION private.sensor_rows_changed() OWNER TO bangkok_owner;
ALTER FUNCTION private.visible_sensor_masks() OWNER TO bangkok_owner;
ALTER FUNCTION private.checked_sensor_id(text, integer) OWNER TO bangkok_owner;
REVOKE ALL ON FUNCTION private.next_sensor_id(), private.refresh_sensor_masks(smallint[]),
    private.sensor_rows_changed(), private.visible_sensor_masks(),
    private.checked_sensor_id(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.visible_sensor_masks(), private.checked_sensor_id(text, integer)
    TO bangkok_api;
DROP FUNCTION private.visible_sensor_mask();

ALTER POLICY api_read ON sensors
    USING (get_bit((SELECT private.visible_sensor_masks())[sensor_id / 32768 + 1],
                   sensor_id % 32768) <> 0);
ALTER POLICY api_read ON sensor_readings_rows
    USING (get_bit((SELECT private.visible_sensor_masks())[sensor_id / 32768 + 1],
                   sensor_id % 32768) <> 0);
ALTER POLICY api_read ON sensor_readings_days
    USING (get_bit((SELECT private.visible_sensor_masks())[sensor_id / 32768 + 1],
                   sensor_id % 32768) <> 0);
ALTER POLICY api_read ON hourly_sensor_stats
    USING (get_bit((SELECT private.visible_sensor_masks())[sensor_id / 32768 + 1],
                   sensor_id % 32768) <> 0);
ALTER POLICY api_read ON daily_sensor_stats
    USING (get_bit((SELECT private.visible_sensor_masks())[sensor_id / 32768 + 1],
                   sensor_id % 32768) <> 0);
ALTER POLICY api_read ON sensor_latest_readings
    USING (get_bit((SELECT private.visible_sensor_masks())[sensor_id / 32768 + 1],
                   sensor_id % 32768) <> 0);
ALTER POLICY api_author_insert ON annotations
    WITH CHECK (tenant_id = (SELECT private.current_tenant_id())
                AND user_id = (SELECT private.current_user_id())
                AND (SELECT private.current_app_role()) IN ('admin', 'analyst')
                AND get_bit((SELECT private.visible_sensor_masks())[sensor_id / 32768 + 1],
                            sensor_id % 32768) <> 0);
ALTER POLICY api_author_update ON annotations
    WITH CHECK (user_id = (SELECT private.current_user_id())
                AND tenant_id = (SELECT private.current_tenant_id())
                AND get_bit((SELECT private.visible_sensor_masks())[sensor_id / 32768 + 1],
                            sensor_id % 32768) <> 0);

-- The views of 0002 and 0009, unchanged but for sensor_id's type.
CREATE VIEW sensor_readings WITH (security_invoker = true) AS
SELECT r.ts, r.sensor_id, r.value
FROM sensor_readings_rows AS r
UNION ALL
SELECT (d.day + (s.slot - 1) * interval '1 minute') AT TIME ZONE 'Asia/Bangkok',
       d.sensor_id, s.value
FROM sensor_readings_days AS d
CROSS JOIN LATERAL unnest(d.vals) WITH ORDINALITY AS s(value, slot)
WHERE s.value IS NOT NULL;

CREATE VIEW hourly_sensor_stats_compressed WITH (security_invoker = true) AS
SELECT (d.day + (h.hour - 1) * interval '1 hour') AT TIME ZONE 'Asia/Bangkok' AS bucket,
       d.sensor_id, d.day, h.n::integer AS n, h.total / h.n AS avg_value, h.min_value,
       h.max_value, CASE WHEN s.unit = 'kW' THEN h.total / 60 END AS energy_kwh
FROM sensor_readings_days AS d
JOIN sensors AS s USING (sensor_id)
CROSS JOIN LATERAL unnest(d.hour_n, d.hour_min, d.hour_max, d.hour_sum) WITH ORDINALITY
    AS h(n, min_value, max_value, total, hour)
WHERE h.n > 0;

CREATE VIEW hourly_aggregates WITH (security_invoker = true) AS
SELECT h.bucket, h.sensor_id, s.floor, s.zone, s.channel, s.kind, s.unit,
       h.n AS readings, h.avg_value, h.min_value, h.max_value, h.energy_kwh
FROM (
    SELECT bucket, sensor_id, n, avg_value, min_value, max_value, energy_kwh
    FROM hourly_sensor_stats
    UNION ALL
    SELECT bucket, sensor_id, n, avg_value, min_value, max_value, energy_kwh
    FROM hourly_sensor_stats_compressed
) AS h
JOIN sensors AS s USING (sensor_id);

CREATE VIEW daily_aggregates WITH (security_invoker = true) AS
SELECT d.day, d.sensor_id, s.floor, s.zone, s.channel, s.kind, s.unit,
       d.n AS readings, d.avg_value, d.min_value, d.max_value, d.energy_kwh
FROM daily_sensor_stats AS d
JOIN sensors AS s USING (sensor_id);

CREATE VIEW daily_floor_energy WITH (security_invoker = true) AS
SELECT d.day, s.building_id, s.floor, sum(d.energy_kwh) AS energy_kwh,
       count(DISTINCT d.sensor_id) AS sensors
FROM daily_sensor_stats AS d
JOIN sensors AS s USING (sensor_id)
WHERE s.unit = 'kW'
GROUP BY d.day, s.building_id, s.floor;

ALTER VIEW sensor_readings OWNER TO bangkok_owner;
ALTER VIEW hourly_sensor_stats_compressed OWNER TO bangkok_owner;
ALTER VIEW hourly_aggregates OWNER TO bangkok_owner;
ALTER VIEW daily_aggregates OWNER TO bangkok_owner;
ALTER VIEW daily_floor_energy OWNER TO bangkok_owner;
GRANT SELECT ON sensor_readings, hourly_sensor_stats_compressed, hourly_aggregates,
    daily_aggregates, daily_floor_energy TO bangkok_api;
GRANT SELECT ON hourly_sensor_stats_compressed TO bangkok_loader;

SELECT private.seal_api_roles();
