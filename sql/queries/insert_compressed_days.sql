-- A month's readings compressed (migration 0009): per sensor and Bangkok day, the day's 1,440
-- minute slots (NULL = no reading), its summaries, and the summaries of each of its 24 hours.
WITH readings AS MATERIALIZED (
    SELECT s.sensor_id, s.value, (s.ts AT TIME ZONE 'Asia/Bangkok')::date AS day,
           (extract(hour FROM s.ts AT TIME ZONE 'Asia/Bangkok') * 60
            + extract(minute FROM s.ts AT TIME ZONE 'Asia/Bangkok'))::integer AS slot
    FROM {source} AS s
), hours AS (
    SELECT sensor_id, day, slot / 60 AS hour, count(*)::smallint AS n, min(value) AS lo,
           max(value) AS hi, sum(value::float8) AS total
    FROM readings
    GROUP BY 1, 2, 3
), hour_arrays AS (
    SELECT k.sensor_id, k.day,
           array_agg(coalesce(h.n, 0::smallint) ORDER BY g.hour) AS hour_n,
           array_agg(h.lo ORDER BY g.hour) AS hour_min,
           array_agg(h.hi ORDER BY g.hour) AS hour_max,
           array_agg(h.total ORDER BY g.hour) AS hour_sum
    FROM (SELECT DISTINCT sensor_id, day FROM hours) AS k
    CROSS JOIN generate_series(0, 23) AS g(hour)
    LEFT JOIN hours AS h ON h.sensor_id = k.sensor_id AND h.day = k.day AND h.hour = g.hour
    GROUP BY k.sensor_id, k.day
), days AS (
    SELECT sensor_id, day, count(*) AS n, min(value) AS min_value, max(value) AS max_value,
           sum(value::float8) AS sum_value,
           private.minute_slots(array_agg(slot), array_agg(value)) AS vals
    FROM readings
    GROUP BY sensor_id, day
)
INSERT INTO {target} (sensor_id, day, n, min_value, max_value, sum_value, vals, hour_n, hour_min,
                      hour_max, hour_sum)
SELECT d.sensor_id, d.day, d.n, d.min_value, d.max_value, d.sum_value, d.vals, a.hour_n,
       a.hour_min, a.hour_max, a.hour_sum
FROM days AS d JOIN hour_arrays AS a USING (sensor_id, day)
