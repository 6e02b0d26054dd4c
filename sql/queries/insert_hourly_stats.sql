-- Hourly per-sensor statistics of one month's readings; energy (kWh) for kW channels is the sum
-- of one-minute kW readings / 60, so missing minutes add no energy.
INSERT INTO {target} (bucket, sensor_id, n, avg_value, min_value, max_value, energy_kwh)
SELECT date_trunc('hour', r.ts) AS bucket, r.sensor_id, count(*), avg(r.value::float8),
       min(r.value), max(r.value),
       CASE WHEN s.unit = 'kW' THEN sum(r.value::float8) / 60 END
FROM {readings} AS r JOIN sensors AS s USING (sensor_id)
GROUP BY 1, r.sensor_id, s.unit;
CREATE UNIQUE INDEX {key} ON {target} (sensor_id, bucket);
