-- Every privilege through which an API role could read or change rows without the parents' Row
-- Level Security: on any relation in schema `partitions` (month partitions and tables being
-- built), on the load's side tables, or on the partitions schema itself. API roles are the
-- role %(api_role)s, every role that is a member of it (directly or through other roles), and
-- PUBLIC. Superusers are left out: they bypass RLS whatever is granted.
WITH RECURSIVE api_roles AS (
    SELECT oid AS role_oid FROM pg_roles WHERE rolname = %(api_role)s
    UNION
    SELECT m.member FROM pg_auth_members AS m JOIN api_roles AS a ON m.roleid = a.role_oid
), grantees AS (
    SELECT r.rolname::text AS grantee
    FROM pg_roles AS r JOIN api_roles AS a ON a.role_oid = r.oid
    WHERE NOT r.rolsuper
    UNION ALL
    SELECT 'public'
), targets AS (
    SELECT c.oid, format('%%I.%%I', n.nspname, c.relname) AS relation
    FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND (n.nspname = 'partitions'
           OR (n.nspname = 'public' AND c.relname = ANY (%(side_tables)s::text[])))
)
SELECT g.grantee, t.relation, p.privilege
FROM grantees AS g
CROSS JOIN targets AS t
CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'REFERENCES']) AS p(privilege)
WHERE has_any_column_privilege(g.grantee, t.oid, p.privilege)
UNION ALL
SELECT g.grantee, t.relation, p.privilege
FROM grantees AS g
CROSS JOIN targets AS t
CROSS JOIN unnest(ARRAY['DELETE', 'TRUNCATE', 'TRIGGER']) AS p(privilege)
WHERE has_table_privilege(g.grantee, t.oid, p.privilege)
UNION ALL
SELECT g.grantee, 'schema partitions', p.privilege
FROM grantees AS g
CROSS JOIN unnest(ARRAY['USAGE', 'CREATE']) AS p(privilege)
WHERE to_regnamespace('partitions') IS NOT NULL
  AND has_schema_privilege(g.grantee, 'partitions', p.privilege)
ORDER BY 1, 2, 3
