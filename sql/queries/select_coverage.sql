-- Per sensor of one month partition: present minutes, and the gaps between readings (including
-- the stretches before the first and after the last reading of the month).
WITH steps AS (
    SELECT sensor_id, ts,
           lead(ts) OVER (PARTITION BY sensor_id ORDER BY ts) AS next_ts
    FROM {table}
)
SELECT sensor_id,
       count(*) AS present,
       count(*) FILTER (WHERE next_ts - ts > interval '1 minute')
           + (min(ts) > %(low)s)::int + (max(ts) < %(high)s - interval '1 minute')::int AS gaps,
       greatest(
           coalesce(max(extract(epoch FROM next_ts - ts) / 60 - 1), 0),
           extract(epoch FROM min(ts) - %(low)s) / 60,
           extract(epoch FROM %(high)s - max(ts)) / 60 - 1
       )::int AS longest_gap_minutes
FROM steps
GROUP BY sensor_id
ORDER BY sensor_id
