-- Subscriptions of every tenant, or of `tenant_id` when it is given, or the one
-- `subscription_id`; in_force as private.active_subscriptions() decides it: active and
-- starts_at <= now() < expires_at.
SELECT s.subscription_id, s.tenant_id, s.building_id, b.name AS building, s.tier, s.status,
       s.starts_at, s.expires_at,
       s.status = 'active' AND s.starts_at <= now()
           AND (s.expires_at IS NULL OR s.expires_at > now()) AS in_force
FROM subscriptions AS s
JOIN buildings AS b USING (building_id)
WHERE (%(tenant_id)s::uuid IS NULL OR s.tenant_id = %(tenant_id)s::uuid)
  AND (%(subscription_id)s::bigint IS NULL OR s.subscription_id = %(subscription_id)s::bigint)
ORDER BY s.tenant_id, s.subscription_id
