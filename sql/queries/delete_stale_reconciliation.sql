-- Ledger rows of the building's sensors that no longer have readings in the month.
DELETE FROM reconciliation
WHERE month = %(month)s AND sensor_id >= %(first)s AND sensor_id < %(beyond)s
  AND NOT (sensor_id = ANY(%(sensor_ids)s))
