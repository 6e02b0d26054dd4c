-- Undo 0010: only while every sensor belongs to the first block (ids 1..32767, which a smallint
-- holds): with sensors of a second building this would lose them, so it refuses.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM public.sensors WHERE sensor_id > 32767) THEN
        RAISE EXCEPTION 'sensors with ids above 32767 exist (buildings after the first); 0009 '
            'cannot hold them: remove those buildings'' sensors and readings first'
            USING ERRCODE = 'object_in_use';
    END IF;
END
$$;

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
DROP FUNCTION IF EXISTS api.latest_readings(integer);
DROP FUNCTION IF EXISTS public.sensor_readings_between(timestamptz, timestamptz);
DROP FUNCTION IF EXISTS public.hourly_stats_between(timestamptz, timestamptz);
DELETE FROM schema_repeatables
WHERE name IN ('api.latest_readings', 'api.sensor_series', 'public.sensor_readings_between',
               'public.hourly_stats_between');

DROP TRIGGER sensors_next_id ON sensors;
DROP FUNCTION private.next_sensor_id();
DROP TRIGGER sensors_added_refresh_masks ON sensors;
DROP TRIGGER sensors_removed_refresh_masks ON sensors;
DROP TRIGGER sensors_updated_refresh_masks ON sensors;
DROP TRIGGER sensors_truncated_refresh_masks ON sensors;
DROP FUNCTION private.sensor_rows_changed();
CREATE TRIGGER sensors_refresh_masks
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sensors
    FOR EACH STATEMENT EXECUTE FUNCTION private.sensors_changed();
ALTER TABLE sensors DROP CONSTRAINT sensors_id_in_building_block;
ALTER TABLE sensors ALTER COLUMN sensor_id TYPE smallint;
ALTER TABLE sensors ALTER COLUMN sensor_id ADD GENERATED ALWAYS AS IDENTITY;
SELECT setval(pg_get_serial_sequence('public.sensors', 'sensor_id'),
              coalesce((SELECT max(sensor_id) FROM sensors), 0) + 1, false);
ALTER TABLE sensor_readings_rows ALTER COLUMN sensor_id TYPE smallint;
ALTER TABLE sensor_readings_days ALTER COLUMN sensor_id TYPE smallint;
ALTER TABLE hourly_sensor_stats ALTER COLUMN sensor_id TYPE smallint;
ALTER TABLE daily_sensor_stats ALTER COLUMN sensor_id TYPE smallint;
ALTER TABLE sensor_latest_readings ALTER COLUMN sensor_id TYPE smallint;
ALTER TABLE reconciliation ALTER COLUMN sensor_id TYPE smallint;
ALTER TABLE sensor_coverage ALTER COLUMN sensor_id TYPE smallint;
ALTER TABLE reading_gaps ALTER COLUMN sensor_id TYPE smallint;
ALTER TABLE annotations ALTER COLUMN sensor_id TYPE smallint;

-- 0006's masks: bit n is sensor_id n, every building recomputed.
DROP FUNCTION private.refresh_sensor_masks(smallint[]);
CREATE OR REPLACE FUNCTION private.refresh_sensor_masks() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ''
AS $$
BEGIN
    LOCK TABLE private.building_sensor_masks IN SHARE UPDATE EXCLUSIVE MODE;
    INSERT INTO private.building_sensor_masks AS m (building_id, tier, mask)
    SELECT b.building_id, t.tier,
           string_agg(CASE WHEN s.sensor_id IS NOT NULL
                            AND (t.tier = 'professional' OR s.free_sample) THEN '1' ELSE '0' END,
                      '' ORDER BY i.id)::varbit::bit(32768)
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

CREATE FUNCTION private.visible_sensor_mask() RETURNS bit
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT bit_or(m.mask)
    FROM private.active_subscriptions() AS a
    JOIN private.building_sensor_masks AS m
        ON m.building_id = a.building_id AND m.tier = a.tier
$$;
ALTER FUNCTION private.visible_sensor_mask() OWNER TO bangkok_owner;
REVOKE ALL ON FUNCTION private.visible_sensor_mask() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.visible_sensor_mask() TO bangkok_api;
DROP FUNCTION private.visible_sensor_masks();
DROP FUNCTION private.checked_sensor_id(text, integer);

ALTER POLICY api_read ON sensors
    USING (get_bit((SELECT private.visible_sensor_mask()), sensor_id) <> 0);
ALTER POLICY api_read ON sensor_readings_rows
    USING (get_bit((SELECT private.visible_sensor_mask()), sensor_id) <> 0);
ALTER POLICY api_read ON sensor_readings_days
    USING (get_bit((SELECT private.visible_sensor_mask()), sensor_id) <> 0);
ALTER POLICY api_read ON hourly_sensor_stats
    USING (get_bit((SELECT private.visible_sensor_mask()), sensor_id) <> 0);
ALTER POLICY api_read ON daily_sensor_stats
    USING (get_bit((SELECT private.visible_sensor_mask()), sensor_id) <> 0);
ALTER POLICY api_read ON sensor_latest_readings
    USING (get_bit((SELECT private.visible_sensor_mask()), sensor_id) <> 0);
ALTER POLICY api_author_insert ON annotations
    WITH CHECK (tenant_id = (SELECT private.current_tenant_id())
                AND user_id = (SELECT private.current_user_id())
                AND (SELECT private.current_app_role()) IN ('admin', 'analyst')
                AND get_bit((SELECT private.visible_sensor_mask()), sensor_id) <> 0);
ALTER POLICY api_author_update ON annotations
    WITH CHECK (user_id = (SELECT private.current_user_id())
                AND tenant_id = (SELECT private.current_tenant_id())
                AND get_bit((SELECT private.visible_sensor_mask()), sensor_id) <> 0);

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

-- The repeatables as 0009 left them (their records went above, so the next upgrade applies
-- the current files again).
-- Latest reading of every sensor of a building (the newest loaded month that has the sensor).
CREATE OR REPLACE FUNCTION api.latest_readings(p_building_id integer)
RETURNS TABLE (sensor_id smallint, floor smallint, zone smallint, channel text, kind text,
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

-- Hourly statistics of the hours starting in [p_from, p_to), from both tiers, each pruned to the
-- period: the stored hours of months of rows by bucket, the compressed days by day (only the
-- days that overlap are unnested). The fast path for hourly_aggregates over compressed months,
-- like sensor_readings_between for the readings: inlined into the caller's query, so further
-- conditions (sensor_id = ...) and the caller's Row Level Security apply as if written out.
CREATE OR REPLACE FUNCTION public.hourly_stats_between(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (bucket timestamptz, sensor_id smallint, n integer, avg_value double precision,
               min_value real, max_value real, energy_kwh double precision)
LANGUAGE sql STABLE
AS $$
    SELECT h.bucket, h.sensor_id, h.n, h.avg_value, h.min_value, h.max_value, h.energy_kwh
    FROM public.hourly_sensor_stats AS h
    WHERE h.bucket >= p_from AND h.bucket < p_to
    UNION ALL
    SELECT c.bucket, c.sensor_id, c.n, c.avg_value, c.min_value, c.max_value, c.energy_kwh
    FROM public.hourly_sensor_stats_compressed AS c
    WHERE c.day BETWEEN (p_from AT TIME ZONE 'Asia/Bangkok')::date
                    AND (p_to AT TIME ZONE 'Asia/Bangkok')::date
      AND c.bucket >= p_from AND c.bucket < p_to
$$;
ALTER FUNCTION public.hourly_stats_between(timestamptz, timestamptz) OWNER TO bangkok_owner;
REVOKE ALL ON FUNCTION public.hourly_stats_between(timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.hourly_stats_between(timestamptz, timestamptz)
    TO bangkok_api, bangkok_loader;

-- The readings of [p_from, p_to) from both tiers, each pruned to the period: the rows by ts, the
-- compressed days by day (only the days that overlap are unnested). The fast path for ad-hoc
-- SQL: the view `sensor_readings` cannot turn a condition on ts into one on the compressed days,
-- so over compressed months `WHERE ts >= ... AND ts < ...` unnests every day of every compressed
-- month. A plain SQL function of one query (STABLE, SECURITY INVOKER, no SET): PostgreSQL inlines
-- it into the caller's query, so further conditions (sensor_id = ...) and the caller's Row Level
-- Security apply as if it were written out (sql/README.md, "Compressed months", has the plans).
CREATE OR REPLACE FUNCTION public.sensor_readings_between(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (ts timestamptz, sensor_id smallint, value real)
LANGUAGE sql STABLE
AS $$
    SELECT r.ts, r.sensor_id, r.value
    FROM public.sensor_readings_rows AS r
    WHERE r.ts >= p_from AND r.ts < p_to
    UNION ALL
    SELECT m.ts, d.sensor_id, s.value
    FROM public.sensor_readings_days AS d
    CROSS JOIN LATERAL unnest(d.vals) WITH ORDINALITY AS s(value, slot)
    CROSS JOIN LATERAL (
        SELECT (d.day + (s.slot - 1) * interval '1 minute') AT TIME ZONE 'Asia/Bangkok'
    ) AS m(ts)
    WHERE d.day BETWEEN (p_from AT TIME ZONE 'Asia/Bangkok')::date
                    AND (p_to AT TIME ZONE 'Asia/Bangkok')::date
      AND s.value IS NOT NULL AND m.ts >= p_from AND m.ts < p_to
$$;
ALTER FUNCTION public.sensor_readings_between(timestamptz, timestamptz) OWNER TO bangkok_owner;
REVOKE ALL ON FUNCTION public.sensor_readings_between(timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.sensor_readings_between(timestamptz, timestamptz)
    TO bangkok_api, bangkok_loader;

ALTER TABLE buildings DROP COLUMN source;

SELECT private.seal_api_roles();
