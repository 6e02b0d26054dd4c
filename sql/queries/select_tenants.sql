-- Every tenant by name, or only `tenant_id` when it is given (`bangkok-pipeline access list`).
SELECT tenant_id, name, created_at
FROM tenants
WHERE %(tenant_id)s::uuid IS NULL OR tenant_id = %(tenant_id)s::uuid
ORDER BY name
