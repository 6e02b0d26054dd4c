-- One ledger row per sensor and month: the validated frame's figures beside the database's.
INSERT INTO reconciliation (month, sensor_id, frame_count, frame_sum, frame_hash,
                            db_count, db_sum, db_hash, run_id, checked_at)
VALUES (%(month)s, %(sensor_id)s, %(frame_count)s, %(frame_sum)s, %(frame_hash)s,
        %(db_count)s, %(db_sum)s, %(db_hash)s, %(run_id)s, now())
ON CONFLICT (month, sensor_id) DO UPDATE
SET frame_count = excluded.frame_count, frame_sum = excluded.frame_sum,
    frame_hash = excluded.frame_hash, db_count = excluded.db_count, db_sum = excluded.db_sum,
    db_hash = excluded.db_hash, run_id = excluded.run_id, checked_at = excluded.checked_at
