-- Per-sensor fingerprints of the new month, rolled up from the hourly ones.
SELECT sensor_id, sum(n)::bigint, sum(total), sum(hash)
FROM hourly_fingerprints
GROUP BY sensor_id
