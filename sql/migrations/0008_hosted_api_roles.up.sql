-- Hosted PostgreSQL: nothing of the pipeline reachable through Supabase's Data API roles.
-- On Supabase the Data API logs in as `authenticator` and switches to `anon` (no JWT),
-- `authenticated` (a user's JWT, its claims in request.jwt.claims) or `service_role` (BYPASSRLS).
-- All three are NOINHERIT, so granting them bangkok_api would lend them nothing; and the project's
-- default privileges give them ALL on every table, sequence and function its login creates in
-- schema public, side tables included. sql/README.md ("Hosted PostgreSQL") explains the model.

-- Identity. The definer functions run as bangkok_owner, which on Supabase cannot be given USAGE on
-- schema auth (its `postgres` holds it without grant option); they read the JWT's `sub` claim
-- themselves, exactly as Supabase's auth.uid() does.
CREATE FUNCTION private.request_user_id() RETURNS uuid
LANGUAGE sql STABLE SET search_path = ''
AS $$
    SELECT coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
    )::uuid
$$;
ALTER FUNCTION private.request_user_id() OWNER TO bangkok_owner;
REVOKE ALL ON FUNCTION private.request_user_id() FROM PUBLIC;

CREATE OR REPLACE FUNCTION private.current_user_id() RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT u.user_id FROM public.app_users AS u
    WHERE u.user_id = private.request_user_id()
      AND (u.login_role IS NULL OR u.login_role = session_user)
$$;

CREATE OR REPLACE FUNCTION private.current_tenant_id() RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT u.tenant_id FROM public.app_users AS u
    WHERE u.user_id = private.request_user_id()
      AND (u.login_role IS NULL OR u.login_role = session_user)
$$;

CREATE OR REPLACE FUNCTION private.current_app_role() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT u.role FROM public.app_users AS u
    WHERE u.user_id = private.request_user_id()
      AND (u.login_role IS NULL OR u.login_role = session_user)
$$;

CREATE OR REPLACE FUNCTION private.active_subscriptions()
RETURNS TABLE (building_id smallint, tier text)
LANGUAGE sql STABLE
AS $$
    SELECT sub.building_id, sub.tier
    FROM public.app_users AS u
    JOIN public.subscriptions AS sub ON sub.tenant_id = u.tenant_id
    WHERE u.user_id = private.request_user_id()
      AND (u.login_role IS NULL OR u.login_role = session_user)
      AND sub.status = 'active' AND sub.starts_at <= now()
      AND (sub.expires_at IS NULL OR sub.expires_at > now())
$$;

-- The load's side tables: Row Level Security on, with only the loader's `service` policy (their
-- owners and the owners' members pass as owners). No API role has a policy, so even a privilege
-- granted by mistake reads and writes nothing. The three the loader fills with COPY, which
-- PostgreSQL refuses under RLS except to the table's owner, become the loader's, as the readings
-- are (a non-superuser migrator can hand a table only to a role that may create in its schema).
-- schema_migrations cannot be altered while the migrator's lock holds it; the revocation below
-- and the audit cover it.
GRANT CREATE ON SCHEMA public TO bangkok_loader;
ALTER TABLE quarantine OWNER TO bangkok_loader;
ALTER TABLE sensor_coverage OWNER TO bangkok_loader;
ALTER TABLE reading_gaps OWNER TO bangkok_loader;
REVOKE CREATE ON SCHEMA public FROM bangkok_loader;
DO $$
DECLARE
    tbl text;
BEGIN
    FOREACH tbl IN ARRAY ARRAY[
        'load_log', 'quarantine', 'reconciliation', 'sensor_coverage', 'reading_gaps',
        'run_failures', 'schema_repeatables', 'archived_months', 'health_alerts', 'month_locks'
    ] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', tbl);
        EXECUTE format(
            'CREATE POLICY service ON %I TO bangkok_loader USING (true) WITH CHECK (true)', tbl);
    END LOOP;
END
$$;

-- Supabase's API roles, where they exist: anon and service_role get nothing of the pipeline's;
-- authenticated (a signed-in user of the Data API) gets the read side of bangkok_api: USAGE on
-- its schemas, SELECT where bangkok_api has it, EXECUTE on the api functions, and a place in the
-- `api_read` policies; so a user sees exactly its subscriptions. Migrations and repeatables that
-- add tables, functions or policies call this again at their end. PUBLIC keeps nothing either.
CREATE FUNCTION private.seal_api_roles() RETURNS void
LANGUAGE plpgsql SET search_path = ''
AS $$
DECLARE
    api_role text;
    obj record;
BEGIN
    FOR api_role IN
        SELECT rolname FROM pg_catalog.pg_roles
        WHERE rolname IN ('anon', 'authenticated', 'service_role')
    LOOP
        FOR obj IN
            SELECT c.oid::regclass AS rel, c.relkind FROM pg_catalog.pg_class AS c
            WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
              AND (c.relowner IN ('bangkok_owner'::regrole, 'bangkok_loader'::regrole)
                   OR c.oid = 'public.schema_migrations'::regclass)
        LOOP
            EXECUTE format('REVOKE ALL ON %s %s FROM %I',
                           CASE obj.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
                           obj.rel, api_role);
        END LOOP;
        FOR obj IN
            SELECT p.oid::regprocedure AS fn FROM pg_catalog.pg_proc AS p
            WHERE p.proowner = 'bangkok_owner'::regrole
        LOOP
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM %I', obj.fn, api_role);
        END LOOP;
        EXECUTE format('REVOKE ALL ON SCHEMA api, private, partitions FROM %I', api_role);
    END LOOP;
    FOR obj IN
        SELECT c.oid::regclass AS rel FROM pg_catalog.pg_class AS c
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
          AND c.relowner IN ('bangkok_owner'::regrole, 'bangkok_loader'::regrole)
          AND EXISTS (SELECT 1 FROM pg_catalog.aclexplode(c.relacl) AS a WHERE a.grantee = 0)
    LOOP
        EXECUTE format('REVOKE ALL ON TABLE %s FROM PUBLIC', obj.rel);
    END LOOP;

    IF to_regrole('authenticated') IS NULL THEN
        RETURN;
    END IF;
    GRANT USAGE ON SCHEMA api, private TO authenticated;
    FOR obj IN
        SELECT c.oid::regclass AS rel FROM pg_catalog.pg_class AS c
        WHERE pg_catalog.has_table_privilege('bangkok_api', c.oid, 'SELECT')
          AND c.relowner IN ('bangkok_owner'::regrole, 'bangkok_loader'::regrole)
    LOOP
        EXECUTE format('GRANT SELECT ON TABLE %s TO authenticated', obj.rel);
    END LOOP;
    FOR obj IN
        SELECT p.oid::regprocedure AS fn FROM pg_catalog.pg_proc AS p
        WHERE p.proowner = 'bangkok_owner'::regrole
          AND pg_catalog.has_function_privilege('bangkok_api', p.oid, 'EXECUTE')
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO authenticated', obj.fn);
    END LOOP;
    FOR obj IN
        SELECT pol.polname, pol.polrelid::regclass AS rel FROM pg_catalog.pg_policy AS pol
        WHERE pol.polname = 'api_read'
          AND 'bangkok_api'::regrole = ANY (pol.polroles)
          AND NOT 'authenticated'::regrole = ANY (pol.polroles)
    LOOP
        EXECUTE format('ALTER POLICY %I ON %s TO bangkok_api, authenticated', obj.polname, obj.rel);
    END LOOP;
END
$$;
ALTER FUNCTION private.seal_api_roles() OWNER TO bangkok_owner;
REVOKE ALL ON FUNCTION private.seal_api_roles() FROM PUBLIC;

SELECT private.seal_api_roles();
