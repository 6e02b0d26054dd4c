-- Per sensor: count, sum and an order-independent hash of (minute, exact float4 bits), the
-- same arithmetic as bangkok_pipeline.transform.fingerprint on the validated frame.
SELECT sensor_id,
       count(*) AS n,
       sum(value::float8) AS total,
       sum(((extract(epoch FROM ts)::bigint / 60) % 1048576) * 1000003
           + ('x' || encode(float4send(value), 'hex'))::bit(32)::int) AS hash
FROM {table}
GROUP BY sensor_id
