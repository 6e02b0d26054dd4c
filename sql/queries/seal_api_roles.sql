-- After a restore: the restored objects were created by the restoring login, so the target's
-- default privileges (Supabase: ALL for anon, authenticated, service_role in schema public) were
-- applied to them, and a backup's privileges are only the differences from PostgreSQL's defaults.
-- Migration 0008's seal takes those grants back (a backup from before 0008 has no seal).
DO $$
BEGIN
    IF to_regprocedure('private.seal_api_roles()') IS NOT NULL THEN
        PERFORM private.seal_api_roles();
    END IF;
END
$$;
