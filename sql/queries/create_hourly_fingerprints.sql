-- One scan of the new month: hourly statistics per sensor plus the count, sum and
-- order-independent hash that reconciliation needs (the arithmetic of
-- select_reading_fingerprints.sql), kept in a temporary table for this transaction.
CREATE TEMP TABLE hourly_fingerprints ON COMMIT DROP AS
SELECT date_trunc('hour', ts) AS bucket, sensor_id, count(*) AS n,
       avg(value::float8) AS avg_value, min(value) AS min_value, max(value) AS max_value,
       sum(value::float8) AS total,
       sum(((extract(epoch FROM ts)::bigint / 60) % 1048576) * 1000003
           + ('x' || encode(float4send(value), 'hex'))::bit(32)::int) AS hash
FROM {readings}
GROUP BY 1, 2
