-- The aggregates of an archived building-month were dropped too (a restore rebuilds them).
UPDATE archived_months
SET aggregates_dropped = true
WHERE building_id = %(building)s AND month = %(month)s
