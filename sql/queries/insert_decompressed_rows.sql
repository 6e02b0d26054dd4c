-- A compressed month back to rows, in the order a load writes them (sensor, then time), so the
-- (sensor_id, ts) BRIN index stays selective.
INSERT INTO {target} (ts, sensor_id, value)
SELECT days.ts, days.sensor_id, days.value
FROM {source}
ORDER BY days.sensor_id, days.ts
