-- A PostgreSQL 15 cluster set up the way a Supabase project is (the roles of supabase/postgres's
-- init scripts), run once by the bootstrap superuser `supabase_admin`. The project's login,
-- `postgres`, is NOT a superuser: it may create roles and databases and bypass RLS, nothing more.
CREATE ROLE postgres LOGIN NOSUPERUSER CREATEROLE CREATEDB REPLICATION BYPASSRLS;

-- The Data API's roles: PostgREST logs in as `authenticator` and switches, per request, to `anon`
-- (no JWT) or `authenticated` (a user's JWT, its claims in request.jwt.claims) or `service_role`.
-- All NOINHERIT: a role granted to them lends them nothing until they SET ROLE to it.
CREATE ROLE anon NOLOGIN NOINHERIT;
CREATE ROLE authenticated NOLOGIN NOINHERIT;
CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
CREATE ROLE authenticator LOGIN NOINHERIT;
GRANT anon, authenticated, service_role TO authenticator;
GRANT anon, authenticated, service_role TO postgres;

-- Supabase Auth's and Storage's own logins own schemas auth and storage.
CREATE ROLE supabase_auth_admin LOGIN NOINHERIT CREATEROLE NOREPLICATION;
CREATE ROLE supabase_storage_admin LOGIN NOINHERIT CREATEROLE NOREPLICATION;

-- Supabase sets statement timeouts on the API roles (and hosted servers often on every login).
ALTER ROLE anon SET statement_timeout = '3s';
ALTER ROLE authenticated SET statement_timeout = '8s';
