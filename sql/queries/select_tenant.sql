-- The tenant `tenant_id` or `name` designates (names are unique); the id wins over a name.
SELECT tenant_id, name, created_at
FROM tenants
WHERE tenant_id = %(tenant_id)s::uuid OR name = %(name)s
ORDER BY (tenant_id = %(tenant_id)s::uuid) IS TRUE DESC
LIMIT 1
