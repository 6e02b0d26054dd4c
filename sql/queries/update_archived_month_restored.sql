-- An archived building-month is back in the database, with its aggregates.
UPDATE archived_months
SET restored_at = now(), aggregates_dropped = false
WHERE building_id = %(building)s AND month = %(month)s
