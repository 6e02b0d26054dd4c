-- What the live partition holds now, beside the frame's figures already in the ledger.
UPDATE reconciliation
SET db_count = %(db_count)s, db_sum = %(db_sum)s, db_hash = %(db_hash)s,
    run_id = %(run_id)s, checked_at = now()
WHERE month = %(month)s AND sensor_id = %(sensor_id)s
