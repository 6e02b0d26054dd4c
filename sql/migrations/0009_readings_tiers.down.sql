-- Undo 0009: only while no month is compressed (the downgrade would lose its readings):
-- `bangkok-pipeline db decompress --months ...` first.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = 'sensor_readings_days'::regclass) THEN
        RAISE EXCEPTION 'compressed months exist: run bangkok-pipeline db decompress for them first'
            USING ERRCODE = 'object_in_use';
    END IF;
END
$$;

DROP VIEW sensor_readings;
DROP TABLE sensor_readings_days;

DO $$
DECLARE
    part record;
BEGIN
    FOR part IN
        SELECT c.relname FROM pg_class AS c
        WHERE c.relnamespace = 'partitions'::regnamespace AND c.relkind IN ('r', 'p')
          AND c.relname ~ '^sensor_readings_rows_y[0-9]{4}m[0-9]{2}'
    LOOP
        EXECUTE format('ALTER TABLE partitions.%I RENAME TO %I', part.relname,
                       'sensor_readings' || substr(part.relname, 21));
    END LOOP;
END
$$;
ALTER INDEX sensor_readings_rows_ts_brin RENAME TO sensor_readings_ts_brin;
ALTER INDEX sensor_readings_rows_sensor_ts_brin RENAME TO sensor_readings_sensor_ts_brin;
ALTER TABLE sensor_readings_rows RENAME TO sensor_readings;
