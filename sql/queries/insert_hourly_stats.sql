-- Hourly per-sensor statistics of the new month; energy (kWh) for kW channels is the sum of
-- one-minute kW readings / 60, so missing minutes add no energy.
INSERT INTO {target} (bucket, sensor_id, n, avg_value, min_value, max_value, energy_kwh)
SELECT h.bucket, h.sensor_id, h.n, h.avg_value, h.min_value, h.max_value,
       CASE WHEN s.unit = 'kW' THEN h.total / 60 END
FROM hourly_fingerprints AS h JOIN sensors AS s USING (sensor_id);
CREATE UNIQUE INDEX {key} ON {target} (sensor_id, bucket);
