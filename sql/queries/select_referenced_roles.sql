-- Roles the objects of the given schemas (the pipeline's) refer to: owners of the schemas,
-- relations, functions and types, grantees of their privileges and of default privileges there
-- (or database-wide), roles named by policies on their tables; then the roles those are members
-- of. With the attributes and memberships a restore recreates.
-- Superusers and predefined pg_* roles are left out: a restore must not (or need not) make them.
WITH RECURSIVE user_schemas AS (
    SELECT oid, nspowner, nspacl
    FROM pg_namespace
    WHERE nspname = ANY (%(schemas)s)
), referenced AS (
    SELECT nspowner AS oid FROM user_schemas
    UNION SELECT (aclexplode(nspacl)).grantee FROM user_schemas WHERE nspacl IS NOT NULL
    UNION SELECT relowner FROM pg_class WHERE relnamespace IN (SELECT oid FROM user_schemas)
    UNION SELECT (aclexplode(relacl)).grantee FROM pg_class
          WHERE relacl IS NOT NULL AND relnamespace IN (SELECT oid FROM user_schemas)
    UNION SELECT proowner FROM pg_proc WHERE pronamespace IN (SELECT oid FROM user_schemas)
    UNION SELECT (aclexplode(proacl)).grantee FROM pg_proc
          WHERE proacl IS NOT NULL AND pronamespace IN (SELECT oid FROM user_schemas)
    UNION SELECT typowner FROM pg_type WHERE typnamespace IN (SELECT oid FROM user_schemas)
    UNION SELECT defaclrole FROM pg_default_acl
          WHERE defaclnamespace = 0 OR defaclnamespace IN (SELECT oid FROM user_schemas)
    UNION SELECT (aclexplode(defaclacl)).grantee FROM pg_default_acl
          WHERE defaclnamespace = 0 OR defaclnamespace IN (SELECT oid FROM user_schemas)
    UNION SELECT unnest(p.polroles) FROM pg_policy AS p JOIN pg_class AS c ON c.oid = p.polrelid
          WHERE c.relnamespace IN (SELECT oid FROM user_schemas)
), with_groups AS (
    SELECT oid FROM referenced
    UNION
    SELECT m.roleid FROM pg_auth_members AS m JOIN with_groups AS g ON m.member = g.oid
)
SELECT r.rolname AS name, r.rolcanlogin, r.rolinherit, r.rolcreaterole, r.rolcreatedb,
       r.rolbypassrls,
       ARRAY(SELECT g.rolname::text FROM pg_auth_members AS m JOIN pg_roles AS g ON g.oid = m.roleid
             WHERE m.member = r.oid ORDER BY 1) AS member_of
FROM pg_roles AS r
JOIN with_groups AS w ON w.oid = r.oid
WHERE NOT r.rolsuper AND r.rolname !~ '^pg_'
ORDER BY r.rolname
