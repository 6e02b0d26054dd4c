-- Undo 0008: the identity functions read auth.uid() again, the side tables lose their Row Level
-- Security, and Supabase's `authenticated` loses what 0008 lent it (anon and service_role keep
-- nothing: the revocations stay).
DROP FUNCTION private.seal_api_roles();

ALTER TABLE quarantine OWNER TO bangkok_owner;
ALTER TABLE sensor_coverage OWNER TO bangkok_owner;
ALTER TABLE reading_gaps OWNER TO bangkok_owner;

DO $$
DECLARE
    obj record;
BEGIN
    IF to_regrole('authenticated') IS NULL THEN
        RETURN;
    END IF;
    FOR obj IN
        SELECT pol.polname, pol.polrelid::regclass AS rel FROM pg_policy AS pol
        WHERE pol.polname = 'api_read' AND 'authenticated'::regrole = ANY (pol.polroles)
    LOOP
        EXECUTE format('ALTER POLICY %I ON %s TO bangkok_api', obj.polname, obj.rel);
    END LOOP;
    FOR obj IN
        SELECT c.oid::regclass AS rel FROM pg_class AS c
        WHERE c.relowner IN ('bangkok_owner'::regrole, 'bangkok_loader'::regrole)
          AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
    LOOP
        EXECUTE format('REVOKE ALL ON TABLE %s FROM authenticated', obj.rel);
    END LOOP;
    FOR obj IN
        SELECT p.oid::regprocedure AS fn FROM pg_proc AS p
        WHERE p.proowner = 'bangkok_owner'::regrole
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM authenticated', obj.fn);
    END LOOP;
    REVOKE ALL ON SCHEMA api, private FROM authenticated;
END
$$;

DO $$
DECLARE
    tbl text;
BEGIN
    FOREACH tbl IN ARRAY ARRAY[
        'load_log', 'quarantine', 'reconciliation', 'sensor_coverage', 'reading_gaps',
        'run_failures', 'schema_repeatables', 'archived_months', 'health_alerts', 'month_locks'
    ] LOOP
        EXECUTE format('DROP POLICY service ON %I', tbl);
        EXECUTE format('ALTER TABLE %I DISABLE ROW LEVEL SECURITY', tbl);
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION private.current_user_id() RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT u.user_id FROM public.app_users AS u
    WHERE u.user_id = auth.uid() AND (u.login_role IS NULL OR u.login_role = session_user)
$$;

CREATE OR REPLACE FUNCTION private.current_tenant_id() RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT u.tenant_id FROM public.app_users AS u
    WHERE u.user_id = auth.uid() AND (u.login_role IS NULL OR u.login_role = session_user)
$$;

CREATE OR REPLACE FUNCTION private.current_app_role() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT u.role FROM public.app_users AS u
    WHERE u.user_id = auth.uid() AND (u.login_role IS NULL OR u.login_role = session_user)
$$;

CREATE OR REPLACE FUNCTION private.active_subscriptions()
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

DROP FUNCTION private.request_user_id();
