-- Users of every tenant, or of `tenant_id` when it is given: admins, analysts, then viewers.
SELECT user_id, tenant_id, role, email, login_role::text AS login_role, created_at
FROM app_users
WHERE %(tenant_id)s::uuid IS NULL OR tenant_id = %(tenant_id)s::uuid
ORDER BY tenant_id, array_position(ARRAY['admin', 'analyst', 'viewer'], role), email
