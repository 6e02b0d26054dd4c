-- Every privilege through which an API role could read or change rows around Row Level Security.
-- API roles: the role %(api_role)s and every role that can act as it (directly or through other
-- roles), PUBLIC, and Supabase's Data API roles where they exist (anon, authenticated,
-- service_role: NOINHERIT, so not members). Superusers are left out: they bypass RLS whatever
-- is granted. Three rules:
--   every API role: nothing on any relation in schema `partitions` (month partitions and tables
--     being built), on the schema itself, or on the load's side tables %(side_tables)s;
--   anon, service_role (BYPASSRLS) and PUBLIC: nothing on any of the pipeline's relations
--     (owned by %(owner_roles)s, or schema_migrations) nor EXECUTE on any of its functions;
--   authenticated: no INSERT, UPDATE, DELETE or TRUNCATE on any of the pipeline's relations.
WITH api AS (
    SELECT oid FROM pg_roles WHERE rolname = %(api_role)s
), grantees AS (
    -- Members that can act as the API role: inherit its privileges or SET ROLE to it. From
    -- PostgreSQL 16 a membership may allow neither (the ADMIN-only grant a CREATEROLE login gets
    -- on each role it creates, such as a non-superuser migrator on bangkok_api): that is no API
    -- login. Before 16 every membership allows SET ROLE.
    SELECT r.rolname::text AS grantee, 'member' AS kind
    FROM pg_roles AS r CROSS JOIN api
    WHERE NOT r.rolsuper
      AND CASE WHEN current_setting('server_version_num')::int >= 160000
               THEN pg_has_role(r.oid, api.oid, 'USAGE') OR pg_has_role(r.oid, api.oid, 'SET')
               ELSE pg_has_role(r.oid, api.oid, 'MEMBER') END
    UNION
    SELECT r.rolname::text, CASE r.rolname WHEN 'authenticated' THEN 'member' ELSE 'outsider' END
    FROM pg_roles AS r
    WHERE r.rolname IN ('anon', 'authenticated', 'service_role') AND NOT r.rolsuper
    UNION
    SELECT 'public', 'outsider'
), relations AS (
    SELECT c.oid, format('%%I.%%I', n.nspname, c.relname) AS relation,
           n.nspname = 'partitions'
           OR (n.nspname = 'public' AND c.relname = ANY (%(side_tables)s::text[])) AS side
    FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND (n.nspname = 'partitions'
           OR c.relowner IN (SELECT oid FROM pg_roles WHERE rolname = ANY (%(owner_roles)s))
           OR c.oid = to_regclass('public.schema_migrations'))
), privileges AS (
    SELECT p.privilege, p.privilege IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES') AS by_column,
           p.privilege IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE') AS writes
    FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'REFERENCES', 'DELETE', 'TRUNCATE',
                      'TRIGGER']) AS p(privilege)
)
SELECT g.grantee, r.relation, p.privilege
FROM grantees AS g
CROSS JOIN relations AS r
CROSS JOIN privileges AS p
WHERE (r.side OR g.kind = 'outsider' OR (g.grantee = 'authenticated' AND p.writes))
  AND CASE WHEN p.by_column THEN has_any_column_privilege(g.grantee, r.oid, p.privilege)
           ELSE has_table_privilege(g.grantee, r.oid, p.privilege) END
UNION ALL
SELECT g.grantee, format('function %%s', f.oid::regprocedure), 'EXECUTE'
FROM grantees AS g
CROSS JOIN pg_proc AS f
WHERE g.kind = 'outsider'
  AND f.proowner IN (SELECT oid FROM pg_roles WHERE rolname = ANY (%(owner_roles)s))
  AND has_function_privilege(g.grantee, f.oid, 'EXECUTE')
UNION ALL
SELECT g.grantee, 'schema partitions', p.privilege
FROM grantees AS g
CROSS JOIN unnest(ARRAY['USAGE', 'CREATE']) AS p(privilege)
WHERE to_regnamespace('partitions') IS NOT NULL
  AND has_schema_privilege(g.grantee, 'partitions', p.privilege)
ORDER BY 1, 2, 3
