-- What every Supabase project database holds before its owner runs anything, applied to
-- template1 (so every database created for a test starts like this) by `supabase_admin`.

-- Schema auth belongs to Supabase Auth. `postgres` gets ALL on it, without grant option.
CREATE SCHEMA auth AUTHORIZATION supabase_auth_admin;
CREATE TABLE auth.users (
    instance_id uuid,
    id          uuid PRIMARY KEY,
    aud         varchar(255),
    role        varchar(255),
    email       varchar(255) UNIQUE,
    created_at  timestamptz DEFAULT now(),
    updated_at  timestamptz DEFAULT now()
);
ALTER TABLE auth.users OWNER TO supabase_auth_admin;

-- Supabase's auth.uid(): the `sub` claim of the request's JWT.
CREATE FUNCTION auth.uid() RETURNS uuid
LANGUAGE sql STABLE
AS $$
    SELECT coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
    )::uuid
$$;
ALTER FUNCTION auth.uid() OWNER TO supabase_auth_admin;

GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
GRANT ALL ON SCHEMA auth TO postgres;
GRANT ALL ON ALL TABLES IN SCHEMA auth TO postgres;
GRANT ALL ON ALL ROUTINES IN SCHEMA auth TO postgres;

-- The Data API exposes schema public: its roles may use it, and every table, sequence and
-- function the project's login (or supabase_admin) creates there is theirs too.
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
GRANT ALL ON SCHEMA public TO postgres;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public
    GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public
    GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public
    GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;

-- Supabase preinstalls pg_stat_statements (preloaded by the server) in schema extensions.
CREATE SCHEMA extensions;
CREATE EXTENSION pg_stat_statements WITH SCHEMA extensions;
GRANT USAGE ON SCHEMA extensions TO anon, authenticated, service_role;
GRANT ALL ON SCHEMA extensions TO postgres;
