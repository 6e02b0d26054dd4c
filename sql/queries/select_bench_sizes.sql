-- After a benchmark load: the readings held (from the compressed days' counts and the rows), the
-- database's size, and the bytes of the compressed readings and of the aggregate tables (summed
-- over the leaves: a month partitioned by building has no storage of its own).
SELECT (SELECT coalesce(sum(n), 0) FROM sensor_readings_days)
       + (SELECT count(*) FROM sensor_readings_rows),
       pg_database_size(current_database()),
       (SELECT coalesce(sum(pg_total_relation_size(relid)), 0)
        FROM pg_partition_tree('sensor_readings_days') WHERE isleaf),
       (SELECT coalesce(sum(pg_total_relation_size(relid)), 0)
        FROM (SELECT relid FROM pg_partition_tree('hourly_sensor_stats') WHERE isleaf
              UNION ALL
              SELECT relid FROM pg_partition_tree('daily_sensor_stats') WHERE isleaf) AS leaves)
