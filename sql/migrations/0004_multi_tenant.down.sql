-- Undo 0004 in this database only. The roles stay: they are cluster-wide and other databases on
-- the server may use them (drop them by hand once no database does: DROP ROLE bangkok_api,
-- bangkok_loader, bangkok_owner). Everything they hold here goes: policies, functions, grants,
-- ownership (back to the role running the downgrade), so nothing in this database depends on
-- them afterwards. Tenancy data (tenants, users, subscriptions, saved queries) is dropped.

DO $$
DECLARE
    tbl text;
    pol record;
BEGIN
    FOREACH tbl IN ARRAY ARRAY[
        'buildings', 'floors', 'zones', 'sensors', 'sensor_readings', 'hourly_sensor_stats',
        'daily_sensor_stats', 'sensor_latest_readings', 'tenants', 'app_users',
        'building_owners', 'subscriptions', 'saved_queries', 'annotations'
    ] LOOP
        FOR pol IN SELECT polname FROM pg_policy WHERE polrelid = tbl::regclass LOOP
            EXECUTE format('DROP POLICY %I ON %I', pol.polname, tbl);
        END LOOP;
        EXECUTE format('ALTER TABLE %I NO FORCE ROW LEVEL SECURITY', tbl);
        EXECUTE format('ALTER TABLE %I DISABLE ROW LEVEL SECURITY', tbl);
    END LOOP;
END
$$;

ALTER VIEW hourly_aggregates RESET (security_invoker);
ALTER VIEW daily_aggregates RESET (security_invoker);
ALTER VIEW daily_floor_energy RESET (security_invoker);

DROP TRIGGER sensors_refresh_masks ON sensors;
DROP TABLE annotations;
DROP TABLE saved_queries;
DROP TABLE subscriptions;
DROP TABLE building_owners;
DROP TABLE app_users;
DROP TABLE tenants;
DROP TABLE sensor_latest_readings;
ALTER TABLE sensors DROP COLUMN free_sample;

DROP SCHEMA api CASCADE;      -- the API functions, nothing else
DROP SCHEMA private CASCADE;  -- the definer and check functions, the sensor masks

-- The auth.uid() shim, only if this migration created it (Supabase's own stays).
DO $$
BEGIN
    IF obj_description(to_regprocedure('auth.uid()'), 'pg_proc') LIKE 'bangkok_pipeline:%' THEN
        DROP FUNCTION auth.uid();
    ELSIF to_regprocedure('auth.uid()') IS NOT NULL THEN
        REVOKE ALL ON FUNCTION auth.uid() FROM bangkok_owner;
    END IF;
    IF obj_description(to_regnamespace('auth'), 'pg_namespace') LIKE 'bangkok_pipeline:%' THEN
        DROP SCHEMA auth;
    ELSIF to_regnamespace('auth') IS NOT NULL THEN
        REVOKE ALL ON SCHEMA auth FROM bangkok_owner;
    END IF;
END
$$;

-- Ownership back to the migrator, for every relation and schema the roles own here (the month
-- partitions included, whichever loads created them).
DO $$
DECLARE
    obj record;
BEGIN
    FOR obj IN
        SELECT c.oid::regclass AS rel, c.relkind FROM pg_class AS c
        WHERE c.relowner IN ('bangkok_owner'::regrole, 'bangkok_loader'::regrole)
          AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO CURRENT_USER',
                       CASE obj.relkind WHEN 'v' THEN 'VIEW'
                                        WHEN 'm' THEN 'MATERIALIZED VIEW'
                                        WHEN 'f' THEN 'FOREIGN TABLE'
                                        ELSE 'TABLE' END,
                       obj.rel);
    END LOOP;
    FOR obj IN
        SELECT n.nspname FROM pg_namespace AS n
        WHERE n.nspowner IN ('bangkok_owner'::regrole, 'bangkok_loader'::regrole)
    LOOP
        EXECUTE format('ALTER SCHEMA %I OWNER TO CURRENT_USER', obj.nspname);
    END LOOP;
END
$$;

-- Grants to the roles in this database (per-database objects only: other databases keep theirs).
REVOKE ALL ON ALL TABLES IN SCHEMA public, partitions
    FROM bangkok_api, bangkok_loader, bangkok_owner;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public, partitions
    FROM bangkok_api, bangkok_loader, bangkok_owner;
REVOKE ALL ON SCHEMA public, partitions FROM bangkok_api, bangkok_loader, bangkok_owner;
