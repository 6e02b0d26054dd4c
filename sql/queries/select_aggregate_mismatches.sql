-- Hourly and daily aggregates of sampled sensors recomputed from the raw month partition;
-- returns one row per bucket whose stored aggregate differs from the recomputation.
WITH sample AS (
    SELECT sensor_id FROM sensors
    WHERE sensor_id IN (SELECT DISTINCT x.sensor_id FROM {readings} AS x)
    ORDER BY hashint4(sensor_id + %(salt)s) LIMIT %(sample_size)s
), hourly AS (
    SELECT date_trunc('hour', r.ts) AS bucket, r.sensor_id, count(*) AS n,
           avg(r.value::float8) AS avg_value, min(r.value) AS min_value,
           max(r.value) AS max_value,
           CASE WHEN s.unit = 'kW' THEN sum(r.value::float8) / 60 END AS energy_kwh
    FROM {readings} AS r JOIN sensors AS s USING (sensor_id)
    WHERE r.sensor_id IN (SELECT sensor_id FROM sample)
    GROUP BY 1, r.sensor_id, s.unit
), daily AS (
    SELECT (r.ts AT TIME ZONE 'Asia/Bangkok')::date AS day, r.sensor_id, count(*) AS n,
           min(r.value) AS min_value, max(r.value) AS max_value
    FROM {readings} AS r
    WHERE r.sensor_id IN (SELECT sensor_id FROM sample)
    GROUP BY 1, r.sensor_id
)
SELECT 'hourly' AS grain, coalesce(h.sensor_id, a.sensor_id) AS sensor_id,
       coalesce(h.bucket, a.bucket)::text AS bucket
FROM hourly AS h
FULL JOIN (SELECT * FROM {hourly} WHERE sensor_id IN (SELECT sensor_id FROM sample)) AS a
    USING (sensor_id, bucket)
WHERE h.n IS DISTINCT FROM a.n OR h.min_value IS DISTINCT FROM a.min_value
   OR h.max_value IS DISTINCT FROM a.max_value
   OR abs(h.avg_value - a.avg_value) > 1e-9 * greatest(1, abs(h.avg_value))
   OR abs(coalesce(h.energy_kwh, 0) - coalesce(a.energy_kwh, 0)) > 1e-9
   OR (h.energy_kwh IS NULL) <> (a.energy_kwh IS NULL)
UNION ALL
SELECT 'daily', coalesce(d.sensor_id, a.sensor_id), coalesce(d.day, a.day)::text
FROM daily AS d
FULL JOIN (SELECT * FROM {daily} WHERE sensor_id IN (SELECT sensor_id FROM sample)) AS a
    USING (sensor_id, day)
WHERE d.n IS DISTINCT FROM a.n OR d.min_value IS DISTINCT FROM a.min_value
   OR d.max_value IS DISTINCT FROM a.max_value
