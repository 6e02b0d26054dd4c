-- After a benchmark load: the readings held (from the compressed days' counts and the rows), the
-- database's size, and the bytes of the compressed readings and of the aggregate tables.
SELECT (SELECT coalesce(sum(n), 0) FROM sensor_readings_days)
       + (SELECT count(*) FROM sensor_readings_rows),
       pg_database_size(current_database()),
       (SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits
        WHERE inhparent = 'sensor_readings_days'::regclass),
       (SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits
        WHERE inhparent IN ('hourly_sensor_stats'::regclass, 'daily_sensor_stats'::regclass))
