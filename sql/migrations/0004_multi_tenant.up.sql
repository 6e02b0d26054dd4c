-- Multi-tenant access: tenants, app users, subscriptions and building ownership; Row Level
-- Security (enabled and forced) on every tenant-scoped table, on the readings, the aggregates and
-- the sensor catalog; the query API in schema `api`; least-privilege roles. sql/README.md
-- ("Access control") explains the model.
--
-- Edited after release so that a migrator that is not a superuser can apply it (the ownership
-- hand-over below); where the earlier text already ran, the result is the same:
-- replaces checksum: 9874e1084056b8bddfef20f9b14133d850735ef1a5c9987902db6948ff4e6a36

-- Roles are cluster-wide while this migration runs once per database: create each only if it is
-- missing (another database on the server, or a migrator racing us, may have made it). Nothing
-- here is LOGIN, SUPERUSER or BYPASSRLS; logins are granted these roles.
--   bangkok_owner   owns the schema (tables, views, api/private functions); migrations act as it
--   bangkok_loader  the pipeline's service role: owns the partitioned readings tables and their
--                   month partitions (ATTACH/DETACH PARTITION and DROP need ownership), writes
--                   the load's side tables, never sees tenants, users or subscriptions
--   bangkok_api     what API logins (or Supabase's `authenticated`) are granted: the api
--                   functions and SELECT on the parents, always through RLS
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['bangkok_owner', 'bangkok_loader', 'bangkok_api'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format(
                    'CREATE ROLE %I NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS',
                    role_name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created meanwhile by the migrator of another database
            END;
        END IF;
    END LOOP;
    -- The owner manages the loader's tables (future migrations, policies on the readings).
    IF NOT pg_has_role('bangkok_owner', 'bangkok_loader', 'MEMBER') THEN
        BEGIN
            GRANT bangkok_loader TO bangkok_owner;
        EXCEPTION WHEN unique_violation THEN
            NULL;
        END;
    END IF;
    -- A migrator that is not a superuser (Supabase's `postgres`) must be able to act as owner.
    IF NOT pg_has_role(current_user, 'bangkok_owner', 'USAGE') THEN
        EXECUTE format('GRANT bangkok_owner TO %I', current_user);
    END IF;
    -- A schema can be given only to a role that may create schemas in the database.
    EXECUTE format('GRANT CREATE ON DATABASE %I TO bangkok_owner', current_database());
END
$$;

-- Identity: Supabase's auth.uid() where it exists; elsewhere a shim with the same definition,
-- reading the claims PostgREST sets per transaction:
--   SELECT set_config('request.jwt.claims', '{"sub": "<user uuid>"}', true)
-- The comments mark what this migration created, so the downgrade removes only that.
DO $$
BEGIN
    IF to_regnamespace('auth') IS NULL THEN
        CREATE SCHEMA auth;
        COMMENT ON SCHEMA auth IS 'bangkok_pipeline: auth.uid() shim for plain PostgreSQL';
    END IF;
    IF to_regprocedure('auth.uid()') IS NULL THEN
        CREATE FUNCTION auth.uid() RETURNS uuid
        LANGUAGE sql STABLE
        AS $fn$
            SELECT coalesce(
                nullif(current_setting('request.jwt.claim.sub', true), ''),
                nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
            )::uuid
        $fn$;
        COMMENT ON FUNCTION auth.uid() IS
            'bangkok_pipeline: shim of Supabase auth.uid(); the sub claim of request.jwt.claims';
        REVOKE ALL ON FUNCTION auth.uid() FROM PUBLIC;
    ELSE
        -- Supabase: the definer functions below (owned by bangkok_owner) call auth.uid().
        GRANT EXECUTE ON FUNCTION auth.uid() TO bangkok_owner;
    END IF;
    IF obj_description('auth'::regnamespace, 'pg_namespace') LIKE 'bangkok_pipeline:%' THEN
        ALTER SCHEMA auth OWNER TO bangkok_owner;
        IF obj_description(to_regprocedure('auth.uid()'), 'pg_proc') LIKE 'bangkok_pipeline:%' THEN
            ALTER FUNCTION auth.uid() OWNER TO bangkok_owner;
        END IF;
    ELSE
        GRANT USAGE ON SCHEMA auth TO bangkok_owner;
    END IF;
END
$$;

-- Tenancy.
CREATE TABLE tenants (
    tenant_id  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL UNIQUE CHECK (name = btrim(name) AND name <> ''),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- user_id is the identity auth.uid() returns (on Supabase: auth.users.id). login_role, when set,
-- pins the identity to one database login: a session of another login that claims this user id
-- is nobody (for deployments where clients log in to PostgreSQL directly).
CREATE TABLE app_users (
    user_id    uuid PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('admin', 'analyst', 'viewer')),
    email      text NOT NULL CHECK (email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    login_role name,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, user_id)
);

-- Which organisation owns a building: its admins may subscribe it at any tier themselves.
CREATE TABLE building_owners (
    building_id smallint PRIMARY KEY REFERENCES buildings ON DELETE CASCADE,
    tenant_id   uuid NOT NULL REFERENCES tenants ON DELETE CASCADE
);
CREATE INDEX building_owners_tenant_idx ON building_owners (tenant_id);

-- What a tenant sees of a building: only while status is active and now() is within
-- [starts_at, expires_at). Professional: every sensor; free: the free sample (sensors.free_sample).
CREATE TABLE subscriptions (
    subscription_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    building_id smallint NOT NULL REFERENCES buildings ON DELETE CASCADE,
    tier        text NOT NULL CHECK (tier IN ('free', 'professional')),
    status      text NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'suspended', 'cancelled')),
    starts_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (expires_at IS NULL OR expires_at > starts_at)
);
CREATE INDEX subscriptions_tenant_idx ON subscriptions (tenant_id, building_id);

-- Analysts' (and admins') saved API calls and notes on sensors; readable by their whole tenant.
CREATE TABLE saved_queries (
    query_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    uuid NOT NULL,
    user_id      uuid NOT NULL,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    api_function text NOT NULL CHECK (api_function IN (
                     'latest_readings', 'sensor_series', 'daily_zone_energy',
                     'building_daily_totals', 'zone_comfort')),
    arguments    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(arguments) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, name),
    FOREIGN KEY (tenant_id, user_id) REFERENCES app_users (tenant_id, user_id)
        ON UPDATE CASCADE ON DELETE CASCADE
);
CREATE INDEX saved_queries_tenant_idx ON saved_queries (tenant_id);

CREATE TABLE annotations (
    annotation_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  uuid NOT NULL,
    user_id    uuid NOT NULL,
    sensor_id  smallint NOT NULL REFERENCES sensors,
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz,
    note       text NOT NULL CHECK (length(note) BETWEEN 1 AND 2000),
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at IS NULL OR ends_at >= starts_at),
    FOREIGN KEY (tenant_id, user_id) REFERENCES app_users (tenant_id, user_id)
        ON UPDATE CASCADE ON DELETE CASCADE
);
CREATE INDEX annotations_tenant_sensor_idx ON annotations (tenant_id, sensor_id, starts_at);

-- The free sample: whole zones, so a zone's energy and its comfort are complete together. Zone 2
-- of every odd-numbered floor: in Chamchuri 5 floors 1, 3, 5 and 7, 24 of 204 sensors (~12 %
-- of readings), every channel kind (AC, light, plug, temperature, humidity, illuminance). Fixed
-- by floor and zone numbers, so it is the same for everyone and does not move when sensors are
-- added elsewhere.
ALTER TABLE sensors ADD COLUMN free_sample boolean
    GENERATED ALWAYS AS (zone = 2 AND floor % 2 = 1) STORED;

-- The last reading of each sensor in each loaded month, replaced together with the month by the
-- loader's swap: "latest reading per sensor" reads a few thousand rows here instead of probing
-- the month partition's BRIN index once per sensor.
CREATE TABLE sensor_latest_readings (
    month     date NOT NULL CHECK (extract(day FROM month) = 1),
    sensor_id smallint NOT NULL REFERENCES sensors,
    ts        timestamptz NOT NULL,
    value     real NOT NULL,
    PRIMARY KEY (month, sensor_id)
);
CREATE INDEX sensor_latest_readings_sensor_idx ON sensor_latest_readings (sensor_id, month DESC);

INSERT INTO sensor_latest_readings (month, sensor_id, ts, value)
SELECT last.month, last.sensor_id, r.ts, r.value
FROM (
    SELECT date_trunc('month', bucket AT TIME ZONE 'Asia/Bangkok')::date AS month, sensor_id,
           max(bucket) AS bucket
    FROM hourly_sensor_stats
    GROUP BY 1, 2
) AS last
CROSS JOIN LATERAL (
    SELECT ts, value FROM sensor_readings AS r
    WHERE r.sensor_id = last.sensor_id
      AND r.ts >= last.bucket AND r.ts < last.bucket + interval '1 hour'
    ORDER BY r.ts DESC
    LIMIT 1
) AS r;

-- Who is asking, and what they may see. SECURITY DEFINER (owned by bangkok_owner, which passes
-- RLS through the `service` policies) so the policies below can consult app_users and
-- subscriptions without recursing into their own policies; STABLE and argument-free, so a
-- policy evaluates them once per statement (an InitPlan), never per row.
-- An empty search_path makes them immune to objects an API role might create elsewhere.
CREATE SCHEMA private;
CREATE SCHEMA api;

CREATE FUNCTION private.current_user_id() RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT u.user_id FROM public.app_users AS u
    WHERE u.user_id = auth.uid() AND (u.login_role IS NULL OR u.login_role = session_user)
$$;

CREATE FUNCTION private.current_tenant_id() RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT u.tenant_id FROM public.app_users AS u
    WHERE u.user_id = auth.uid() AND (u.login_role IS NULL OR u.login_role = session_user)
$$;

CREATE FUNCTION private.current_app_role() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT u.role FROM public.app_users AS u
    WHERE u.user_id = auth.uid() AND (u.login_role IS NULL OR u.login_role = session_user)
$$;

-- The caller's tenant's subscriptions that are in force now: status active and
-- starts_at <= now() < expires_at. Plain SQL, so it is inlined into the definer functions below
-- and runs with their rights.
CREATE FUNCTION private.active_subscriptions()
RETURNS TABLE (building_id smallint, tier text)
LANGUAGE sql STABLE
AS $$
    SELECT sub.building_id, sub.tier
    FROM public.app_users AS u
    JOIN public.subscriptions AS sub ON sub.tenant_id = u.tenant_id
    WHERE u.user_id = auth.uid() AND (u.login_role IS NULL OR u.login_role = session_user)
      AND sub.status = 'active' AND sub.starts_at <= now()
      AND (sub.expires_at IS NULL OR sub.expires_at > now())
$$;

-- Per building, the sensors each tier sees as a bit mask: bit n is sensor_id n, 32768 bits (every
-- smallint id), so testing any row is one get_bit. Stored PLAIN (never compressed or moved out of
-- line): the mask a policy receives needs no detoasting per row. Kept in step with `sensors` by
-- a statement trigger.
CREATE TABLE private.building_sensor_masks (
    building_id smallint NOT NULL REFERENCES buildings ON DELETE CASCADE,
    tier        text NOT NULL CHECK (tier IN ('free', 'professional')),
    mask        bit(32768) NOT NULL,
    PRIMARY KEY (building_id, tier)
);
ALTER TABLE private.building_sensor_masks ALTER COLUMN mask SET STORAGE PLAIN;

CREATE FUNCTION private.refresh_sensor_masks() RETURNS void
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

CREATE FUNCTION private.sensors_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ''
AS $$
BEGIN
    PERFORM private.refresh_sensor_masks();
    RETURN NULL;
END
$$;

CREATE TRIGGER sensors_refresh_masks
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sensors
    FOR EACH STATEMENT EXECUTE FUNCTION private.sensors_changed();

SELECT private.refresh_sensor_masks();

-- The sensors the caller may see, as one 32768-bit mask: the OR of its subscriptions' masks (a
-- free and a professional subscription to one building OR to the professional mask). Policies
-- test a row with get_bit(mask, sensor_id), O(1) per row whatever the plan, and the planner
-- estimates `get_bit(...) <> 0` as nearly all rows, so plans stay the owner's. NULL (nothing
-- visible) hides every row.
CREATE FUNCTION private.visible_sensor_mask() RETURNS bit
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT bit_or(m.mask)
    FROM private.active_subscriptions() AS a
    JOIN private.building_sensor_masks AS m
        ON m.building_id = a.building_id AND m.tier = a.tier
$$;

CREATE FUNCTION private.visible_building_ids() RETURNS smallint[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT coalesce(array_agg(DISTINCT a.building_id), '{}')
    FROM private.active_subscriptions() AS a
$$;

CREATE FUNCTION private.owned_building_ids() RETURNS smallint[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT coalesce(array_agg(o.building_id ORDER BY o.building_id), '{}')
    FROM public.building_owners AS o
    WHERE o.tenant_id = private.current_tenant_id()
$$;

-- Parameter checks shared by the API functions: SQLSTATE 22004 for a NULL, 22023 for a bad
-- value, and a message that names the parameter.
CREATE FUNCTION private.checked_id(p_name text, p_value integer) RETURNS smallint
LANGUAGE plpgsql IMMUTABLE SET search_path = ''
AS $$
BEGIN
    IF p_value IS NULL THEN
        RAISE EXCEPTION '% must not be null', p_name USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_value NOT BETWEEN 1 AND 32767 THEN
        RAISE EXCEPTION '% must be between 1 and 32767, got %', p_name, p_value
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN p_value::smallint;
END
$$;

CREATE FUNCTION private.check_days(p_first_day date, p_last_day date, p_max_days integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = ''
AS $$
BEGIN
    IF p_first_day IS NULL OR p_last_day IS NULL THEN
        RAISE EXCEPTION 'p_first_day and p_last_day must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT (isfinite(p_first_day) AND isfinite(p_last_day)) THEN
        RAISE EXCEPTION 'p_first_day and p_last_day must be finite dates'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_first_day > p_last_day THEN
        RAISE EXCEPTION 'p_first_day (%) is after p_last_day (%)', p_first_day, p_last_day
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_last_day - p_first_day + 1 > p_max_days THEN
        RAISE EXCEPTION 'at most % days per call, got %', p_max_days,
            p_last_day - p_first_day + 1 USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

CREATE FUNCTION private.check_period(p_from timestamptz, p_to timestamptz, p_max interval)
RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = ''
AS $$
BEGIN
    IF p_from IS NULL OR p_to IS NULL THEN
        RAISE EXCEPTION 'p_from and p_to must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT (isfinite(p_from) AND isfinite(p_to)) THEN
        RAISE EXCEPTION 'p_from and p_to must be finite timestamps'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_from >= p_to THEN
        RAISE EXCEPTION 'p_from (%) must be before p_to (%)', p_from, p_to
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_to - p_from > p_max THEN
        RAISE EXCEPTION 'at most % per call at this bucket, got %', p_max, p_to - p_from
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- The query API. SECURITY INVOKER: every read goes through the caller's RLS policies, so a
-- building, sensor or day the caller may not see yields no rows (the same as one that does not
-- exist: nothing to probe). Bad parameters raise instead. No dynamic SQL: arguments are only
-- ever values.

-- Latest reading of every sensor of a building (the newest loaded month that has the sensor).
CREATE FUNCTION api.latest_readings(p_building_id integer)
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

-- One sensor between p_from (inclusive) and p_to (exclusive). raw: every reading (at most 31
-- days); hour / day: the stored aggregates whose bucket starts in the window (at most 366 /
-- 3660 days), days being Bangkok calendar days. energy_kwh only for kW channels.
CREATE FUNCTION api.sensor_series(p_sensor_id integer, p_from timestamptz, p_to timestamptz,
                                  p_bucket text DEFAULT 'hour')
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

-- Energy (kWh) per day, floor and zone of a building, with each floor's total in the rows whose
-- zone is NULL; days p_first_day..p_last_day inclusive, at most 366.
CREATE FUNCTION api.daily_zone_energy(p_building_id integer, p_first_day date, p_last_day date)
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

-- A building's energy per day, in total and per load kind; at most 731 days.
CREATE FUNCTION api.building_daily_totals(p_building_id integer, p_first_day date,
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

-- Temperature (degC) and relative humidity (%) per zone over the days, from the daily
-- aggregates (averages weighted by readings); at most 366 days.
CREATE FUNCTION api.zone_comfort(p_building_id integer, p_first_day date, p_last_day date)
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

-- Inserts default to the caller's tenant and identity.
ALTER TABLE app_users ALTER COLUMN tenant_id SET DEFAULT private.current_tenant_id();
ALTER TABLE subscriptions ALTER COLUMN tenant_id SET DEFAULT private.current_tenant_id();
ALTER TABLE saved_queries ALTER COLUMN tenant_id SET DEFAULT private.current_tenant_id();
ALTER TABLE saved_queries ALTER COLUMN user_id SET DEFAULT private.current_user_id();
ALTER TABLE annotations ALTER COLUMN tenant_id SET DEFAULT private.current_tenant_id();
ALTER TABLE annotations ALTER COLUMN user_id SET DEFAULT private.current_user_id();

-- Ownership. The loader owns the partitioned parents and every month partition: PostgreSQL has
-- no grantable privilege for ATTACH/DETACH PARTITION or DROP, only ownership. The rest belongs
-- to bangkok_owner. (ALTER ... OWNER of a parent does not recurse to its partitions.)
-- A migrator that is not a superuser (Supabase's `postgres`) may give an object only to a role
-- that may create in the object's schema: bangkok_owner keeps CREATE on public (and on the
-- database, granted above); the loader gets CREATE on public for the hand-over only.
GRANT CREATE ON SCHEMA public TO bangkok_owner, bangkok_loader;
GRANT CREATE ON SCHEMA partitions TO bangkok_loader;
ALTER TABLE sensor_readings OWNER TO bangkok_loader;
ALTER TABLE hourly_sensor_stats OWNER TO bangkok_loader;
ALTER TABLE daily_sensor_stats OWNER TO bangkok_loader;
DO $$
DECLARE
    part regclass;
BEGIN
    FOR part IN
        SELECT c.oid::regclass FROM pg_class AS c
        WHERE c.relnamespace = 'partitions'::regnamespace AND c.relkind IN ('r', 'p')
    LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO bangkok_loader', part);
    END LOOP;
END
$$;
REVOKE CREATE ON SCHEMA public FROM bangkok_loader;
ALTER SCHEMA partitions OWNER TO bangkok_owner;
ALTER SCHEMA private OWNER TO bangkok_owner;
ALTER SCHEMA api OWNER TO bangkok_owner;
ALTER TABLE buildings OWNER TO bangkok_owner;
ALTER TABLE floors OWNER TO bangkok_owner;
ALTER TABLE zones OWNER TO bangkok_owner;
ALTER TABLE sensors OWNER TO bangkok_owner;
ALTER TABLE load_log OWNER TO bangkok_owner;
ALTER TABLE quarantine OWNER TO bangkok_owner;
ALTER TABLE reconciliation OWNER TO bangkok_owner;
ALTER TABLE sensor_coverage OWNER TO bangkok_owner;
ALTER TABLE reading_gaps OWNER TO bangkok_owner;
ALTER TABLE run_failures OWNER TO bangkok_owner;
ALTER TABLE sensor_latest_readings OWNER TO bangkok_owner;
ALTER TABLE tenants OWNER TO bangkok_owner;
ALTER TABLE app_users OWNER TO bangkok_owner;
ALTER TABLE building_owners OWNER TO bangkok_owner;
ALTER TABLE subscriptions OWNER TO bangkok_owner;
ALTER TABLE saved_queries OWNER TO bangkok_owner;
ALTER TABLE annotations OWNER TO bangkok_owner;
ALTER TABLE private.building_sensor_masks OWNER TO bangkok_owner;
ALTER VIEW hourly_aggregates OWNER TO bangkok_owner;
ALTER VIEW daily_aggregates OWNER TO bangkok_owner;
ALTER VIEW daily_floor_energy OWNER TO bangkok_owner;
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure FROM pg_proc AS p
        WHERE p.pronamespace IN ('api'::regnamespace, 'private'::regnamespace)
    LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO bangkok_owner', fn);
    END LOOP;
END
$$;

-- The views read with the caller's privileges and policies, not their owner's.
ALTER VIEW hourly_aggregates SET (security_invoker = true);
ALTER VIEW daily_aggregates SET (security_invoker = true);
ALTER VIEW daily_floor_energy SET (security_invoker = true);

-- Row Level Security, enabled and forced (owners too are subject to it). Two kinds of policy:
--   service   the documented bypass for system operations: USING (true) for the loader (and so
--             for bangkok_owner, a member of it) on sensor data, and for bangkok_owner (which the
--             definer functions run as) on tenancy. An explicit policy instead of BYPASSRLS,
--             which only a role holding BYPASSRLS (a superuser) can grant.
--   api_*     bangkok_api: the visible sensors/buildings or the caller's tenant, computed once
--             per statement by a private function in an InitPlan. On sensor data:
--             get_bit((SELECT private.visible_sensor_mask()), sensor_id) <> 0. Measured on the
--             18 loaded months against the owner (median per call, same plans): the mask adds
--             7-15 %. `sensor_id = ANY ((SELECT private.visible_sensor_ids()))` searched the
--             ~200-element array linearly per row (+0.9 ms on a one-day raw series, ~+50 %) and,
--             as a btree index condition, re-sorted the array on each of latest_readings' 204
--             index probes (+0.4 ms); a hashed `sensor_id IN (SELECT unnest(...))` SubPlan is
--             rebuilt on every rescan of a nested loop's inner side (23 us a probe, +4 ms).
DO $$
DECLARE
    tbl text;
BEGIN
    FOREACH tbl IN ARRAY ARRAY[
        'buildings', 'floors', 'zones', 'sensors', 'sensor_readings', 'hourly_sensor_stats',
        'daily_sensor_stats', 'sensor_latest_readings', 'tenants', 'app_users',
        'building_owners', 'subscriptions', 'saved_queries', 'annotations'
    ] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', tbl);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', tbl);
    END LOOP;
    FOREACH tbl IN ARRAY ARRAY[
        'buildings', 'floors', 'zones', 'sensors', 'sensor_readings', 'hourly_sensor_stats',
        'daily_sensor_stats', 'sensor_latest_readings'
    ] LOOP
        EXECUTE format(
            'CREATE POLICY service ON %I TO bangkok_loader USING (true) WITH CHECK (true)', tbl);
    END LOOP;
    FOREACH tbl IN ARRAY ARRAY[
        'tenants', 'app_users', 'building_owners', 'subscriptions', 'saved_queries', 'annotations'
    ] LOOP
        EXECUTE format(
            'CREATE POLICY service ON %I TO bangkok_owner USING (true) WITH CHECK (true)', tbl);
        EXECUTE format(
            'CREATE POLICY api_read ON %I FOR SELECT TO bangkok_api '
            'USING (tenant_id = (SELECT private.current_tenant_id()))', tbl);
    END LOOP;
    FOREACH tbl IN ARRAY ARRAY[
        'sensors', 'sensor_readings', 'hourly_sensor_stats', 'daily_sensor_stats',
        'sensor_latest_readings'
    ] LOOP
        EXECUTE format(
            'CREATE POLICY api_read ON %I FOR SELECT TO bangkok_api '
            'USING (get_bit((SELECT private.visible_sensor_mask()), sensor_id) <> 0)', tbl);
    END LOOP;
    FOREACH tbl IN ARRAY ARRAY['buildings', 'floors', 'zones'] LOOP
        EXECUTE format(
            'CREATE POLICY api_read ON %I FOR SELECT TO bangkok_api '
            'USING (building_id = ANY ((SELECT private.visible_building_ids())::smallint[]))', tbl);
    END LOOP;
END
$$;

-- Admins manage their own tenant's users (but cannot remove themselves).
CREATE POLICY api_admin_insert ON app_users FOR INSERT TO bangkok_api
    WITH CHECK (tenant_id = (SELECT private.current_tenant_id())
                AND (SELECT private.current_app_role()) = 'admin');
CREATE POLICY api_admin_update ON app_users FOR UPDATE TO bangkok_api
    USING (tenant_id = (SELECT private.current_tenant_id())
           AND (SELECT private.current_app_role()) = 'admin')
    WITH CHECK (tenant_id = (SELECT private.current_tenant_id()));
CREATE POLICY api_admin_delete ON app_users FOR DELETE TO bangkok_api
    USING (tenant_id = (SELECT private.current_tenant_id())
           AND (SELECT private.current_app_role()) = 'admin'
           AND user_id <> (SELECT private.current_user_id()));

-- Admins subscribe their tenant: free for any building, professional only for buildings their
-- tenant owns (anything else is sold through the service role); and they cancel. Nobody deletes.
CREATE POLICY api_admin_insert ON subscriptions FOR INSERT TO bangkok_api
    WITH CHECK (tenant_id = (SELECT private.current_tenant_id())
                AND (SELECT private.current_app_role()) = 'admin'
                AND status = 'active'
                AND (tier = 'free'
                     OR building_id = ANY ((SELECT private.owned_building_ids())::smallint[])));
CREATE POLICY api_admin_cancel ON subscriptions FOR UPDATE TO bangkok_api
    USING (tenant_id = (SELECT private.current_tenant_id())
           AND (SELECT private.current_app_role()) = 'admin')
    WITH CHECK (tenant_id = (SELECT private.current_tenant_id()) AND status = 'cancelled');

-- Analysts and admins write their own saved queries and annotations; viewers only read.
CREATE POLICY api_author_insert ON saved_queries FOR INSERT TO bangkok_api
    WITH CHECK (tenant_id = (SELECT private.current_tenant_id())
                AND user_id = (SELECT private.current_user_id())
                AND (SELECT private.current_app_role()) IN ('admin', 'analyst'));
CREATE POLICY api_author_update ON saved_queries FOR UPDATE TO bangkok_api
    USING (user_id = (SELECT private.current_user_id())
           AND (SELECT private.current_app_role()) IN ('admin', 'analyst'))
    WITH CHECK (user_id = (SELECT private.current_user_id())
                AND tenant_id = (SELECT private.current_tenant_id()));
CREATE POLICY api_author_delete ON saved_queries FOR DELETE TO bangkok_api
    USING (user_id = (SELECT private.current_user_id())
           AND (SELECT private.current_app_role()) IN ('admin', 'analyst'));
CREATE POLICY api_author_insert ON annotations FOR INSERT TO bangkok_api
    WITH CHECK (tenant_id = (SELECT private.current_tenant_id())
                AND user_id = (SELECT private.current_user_id())
                AND (SELECT private.current_app_role()) IN ('admin', 'analyst')
                AND get_bit((SELECT private.visible_sensor_mask()), sensor_id) <> 0);
CREATE POLICY api_author_update ON annotations FOR UPDATE TO bangkok_api
    USING (user_id = (SELECT private.current_user_id())
           AND (SELECT private.current_app_role()) IN ('admin', 'analyst'))
    WITH CHECK (user_id = (SELECT private.current_user_id())
                AND tenant_id = (SELECT private.current_tenant_id())
                AND get_bit((SELECT private.visible_sensor_mask()), sensor_id) <> 0);
CREATE POLICY api_author_delete ON annotations FOR DELETE TO bangkok_api
    USING (user_id = (SELECT private.current_user_id())
           AND (SELECT private.current_app_role()) IN ('admin', 'analyst'));

-- Privileges: nothing for PUBLIC; API roles get the api functions and SELECT on the parents and
-- tenancy (rows filtered by the policies above), never the partitions schema, the load's side
-- tables (load_log, quarantine, reconciliation, coverage, gaps, run_failures) or migrations.
REVOKE ALL ON SCHEMA api, private, partitions FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA api, private FROM PUBLIC;

GRANT USAGE ON SCHEMA public TO bangkok_owner;
GRANT USAGE ON SCHEMA public, api, private TO bangkok_api;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA api TO bangkok_api;
GRANT EXECUTE ON FUNCTION private.current_user_id(), private.current_tenant_id(),
    private.current_app_role(), private.visible_sensor_mask(),
    private.visible_building_ids(), private.owned_building_ids(),
    private.checked_id(text, integer), private.check_days(date, date, integer),
    private.check_period(timestamptz, timestamptz, interval) TO bangkok_api;
GRANT SELECT ON buildings, floors, zones, sensors, sensor_readings, hourly_sensor_stats,
    daily_sensor_stats, sensor_latest_readings, hourly_aggregates, daily_aggregates,
    daily_floor_energy, tenants, app_users, building_owners, subscriptions, saved_queries,
    annotations TO bangkok_api;
GRANT INSERT (user_id, tenant_id, role, email), UPDATE (role, email), DELETE
    ON app_users TO bangkok_api;
GRANT INSERT (tenant_id, building_id, tier, status, starts_at, expires_at), UPDATE (status)
    ON subscriptions TO bangkok_api;
GRANT INSERT (tenant_id, user_id, name, api_function, arguments),
    UPDATE (name, api_function, arguments), DELETE ON saved_queries TO bangkok_api;
GRANT INSERT (tenant_id, user_id, sensor_id, starts_at, ends_at, note),
    UPDATE (starts_at, ends_at, note), DELETE ON annotations TO bangkok_api;

GRANT USAGE ON SCHEMA public TO bangkok_loader;
GRANT USAGE, CREATE ON SCHEMA partitions TO bangkok_loader;
GRANT SELECT ON schema_migrations, buildings TO bangkok_loader;
GRANT SELECT, INSERT ON floors, zones, sensors TO bangkok_loader;
GRANT SELECT, INSERT, UPDATE, DELETE ON load_log, quarantine, reconciliation, sensor_coverage,
    reading_gaps, run_failures, sensor_latest_readings TO bangkok_loader;
