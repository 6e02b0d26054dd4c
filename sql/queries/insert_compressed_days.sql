-- A month's readings compressed (migration 0009): per sensor and Bangkok day, the day's 1,440
-- minute slots (NULL = no reading) and its summaries.
INSERT INTO {target} (sensor_id, day, n, min_value, max_value, sum_value, vals)
SELECT r.sensor_id, r.day, count(*), min(r.value), max(r.value), sum(r.value::float8),
       private.minute_slots(array_agg(r.slot), array_agg(r.value))
FROM (
    SELECT s.sensor_id, s.value, (s.ts AT TIME ZONE 'Asia/Bangkok')::date AS day,
           (extract(hour FROM s.ts AT TIME ZONE 'Asia/Bangkok') * 60
            + extract(minute FROM s.ts AT TIME ZONE 'Asia/Bangkok'))::integer AS slot
    FROM {source} AS s
) AS r
GROUP BY r.sensor_id, r.day
