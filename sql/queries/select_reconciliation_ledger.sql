-- The validated frame's figures recorded for a building-month, per sensor (its block of ids).
SELECT sensor_id, frame_count, frame_sum, frame_hash
FROM reconciliation
WHERE month = %(month)s AND sensor_id >= %(low)s AND sensor_id < %(high)s
