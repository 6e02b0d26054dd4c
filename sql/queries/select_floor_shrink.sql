-- Readings per floor of one building-month: as loaded (the attached daily partitions of the
-- month's days, the building's sensors) and as newly built (the unattached daily table being
-- loaded).
SELECT s.floor,
       coalesce(sum(c.n) FILTER (WHERE c.loaded), 0)::bigint AS loaded,
       coalesce(sum(c.n) FILTER (WHERE NOT c.loaded), 0)::bigint AS new
FROM (
    SELECT sensor_id, n, true AS loaded
    FROM daily_sensor_stats
    WHERE day >= %(low)s AND day < %(high)s
      AND sensor_id >= %(first)s AND sensor_id < %(beyond)s
    UNION ALL
    SELECT sensor_id, n, false
    FROM {new_daily}
) AS c
JOIN sensors AS s USING (sensor_id)
GROUP BY s.floor
ORDER BY s.floor
