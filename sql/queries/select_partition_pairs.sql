-- A month table's readings as one blob per sensor of (timestamptz, real) pairs in their binary
-- send format, in time order: a few hundred rows for Python to take instead of millions.
SELECT sensor_id,
       string_agg(timestamptz_send(ts) || float4send(value), ''::bytea ORDER BY ts) AS pairs
FROM {table}
GROUP BY sensor_id
ORDER BY sensor_id
