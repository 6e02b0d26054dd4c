-- Daily (Bangkok calendar day) per-sensor statistics, rolled up from the hourly ones.
INSERT INTO {target} (day, sensor_id, n, avg_value, min_value, max_value, energy_kwh)
SELECT (h.bucket AT TIME ZONE 'Asia/Bangkok')::date, h.sensor_id, sum(h.n),
       sum(h.avg_value * h.n) / sum(h.n), min(h.min_value), max(h.max_value), sum(h.energy_kwh)
FROM {hourly} AS h
GROUP BY 1, h.sensor_id;
CREATE UNIQUE INDEX {key} ON {target} (sensor_id, day);
