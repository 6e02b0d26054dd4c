-- The coverage map of one loaded month, per sensor.
SELECT sensor_id, present_minutes, expected_minutes, gap_segments, longest_gap_minutes
FROM sensor_coverage
WHERE month = %(month)s
ORDER BY sensor_id
