-- The last reading of each sensor in a newly built month (for sensor_latest_readings): the
-- month's hourly table gives each sensor's last hour, the (sensor_id, ts) BRIN index its rows.
SELECT last.sensor_id, r.ts, r.value
FROM (SELECT sensor_id, max(bucket) AS bucket FROM {hourly} GROUP BY sensor_id) AS last
CROSS JOIN LATERAL (
    SELECT ts, value FROM {readings} AS r
    WHERE r.sensor_id = last.sensor_id
      AND r.ts >= last.bucket AND r.ts < last.bucket + interval '1 hour'
    ORDER BY r.ts DESC
    LIMIT 1
) AS r
ORDER BY last.sensor_id
