-- A tenant's subscription to a building (service operation: billing, renewals, upgrades).
INSERT INTO subscriptions (tenant_id, building_id, tier, status, starts_at, expires_at)
VALUES (%(tenant_id)s, %(building_id)s, %(tier)s, %(status)s,
        coalesce(%(starts_at)s, now()), %(expires_at)s)
RETURNING subscription_id
