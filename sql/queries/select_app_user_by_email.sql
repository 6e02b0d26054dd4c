-- The user, in any tenant, who already has this email (compared case-insensitively).
SELECT u.user_id, t.name
FROM app_users AS u
JOIN tenants AS t USING (tenant_id)
WHERE lower(u.email) = lower(%(email)s)
LIMIT 1
