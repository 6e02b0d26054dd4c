-- The month's indexes, matching the parent's partitioned indexes so ATTACH adopts them.
CREATE INDEX {sensor_ts} ON {table} USING brin (sensor_id, ts) WITH (pages_per_range = 16);
CREATE INDEX {ts} ON {table} USING brin (ts) WITH (pages_per_range = 32);
