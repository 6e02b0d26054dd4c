-- Close a load: succeeded with its counts, or failed with the error.
UPDATE load_log
SET status = %(status)s, rows_loaded = %(rows_loaded)s, rows_quarantined = %(rows_quarantined)s,
    checksum = %(checksum)s, timings = %(timings)s, error = %(error)s, finished_at = now()
WHERE load_id = %(load_id)s
