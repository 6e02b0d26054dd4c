-- A subscription's status, only while it is one of `from_statuses` (no row otherwise).
UPDATE subscriptions
SET status = %(status)s
WHERE subscription_id = %(subscription_id)s AND status = ANY (%(from_statuses)s)
RETURNING subscription_id
