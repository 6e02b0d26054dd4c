INSERT INTO load_log (building_id, month, run_id, status, source_fingerprints, rows_read)
VALUES (%(building)s, %(month)s, %(run_id)s, 'running', %(fingerprints)s, %(rows_read)s)
RETURNING load_id
