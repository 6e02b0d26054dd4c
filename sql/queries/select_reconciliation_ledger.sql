-- The validated frame's figures recorded for a month, per sensor.
SELECT sensor_id, frame_count, frame_sum, frame_hash
FROM reconciliation
WHERE month = %(month)s
