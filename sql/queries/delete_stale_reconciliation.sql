-- Ledger rows of sensors that no longer have readings in the month.
DELETE FROM reconciliation WHERE month = %(month)s AND NOT (sensor_id = ANY(%(sensor_ids)s))
