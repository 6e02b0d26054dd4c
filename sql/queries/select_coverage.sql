-- The coverage map of one loaded building-month, per sensor (the building's block of ids).
SELECT sensor_id, present_minutes, expected_minutes, gap_segments, longest_gap_minutes
FROM sensor_coverage
WHERE month = %(month)s AND sensor_id >= %(low)s AND sensor_id < %(high)s
ORDER BY sensor_id
