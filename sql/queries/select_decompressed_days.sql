-- The (ts, sensor_id, value) readings of a table of compressed days, as the view
-- `sensor_readings` unnests them (migration 0009).
SELECT (d.day + (s.slot - 1) * interval '1 minute') AT TIME ZONE 'Asia/Bangkok' AS ts,
       d.sensor_id, s.value
FROM {source} AS d
CROSS JOIN LATERAL unnest(d.vals) WITH ORDINALITY AS s(value, slot)
WHERE s.value IS NOT NULL
