-- Daily (Bangkok calendar day) per-sensor statistics of a compressed month, from the summaries
-- each day row carries: no decompressing. Energy (kWh) of kW channels is the sum of one-minute
-- kW readings / 60, as for months of rows.
INSERT INTO {target} (day, sensor_id, n, avg_value, min_value, max_value, energy_kwh)
SELECT d.day, d.sensor_id, d.n, d.sum_value / d.n, d.min_value, d.max_value,
       CASE WHEN s.unit = 'kW' THEN d.sum_value / 60 END
FROM {days} AS d JOIN sensors AS s USING (sensor_id);
CREATE UNIQUE INDEX {key} ON {target} (sensor_id, day);
