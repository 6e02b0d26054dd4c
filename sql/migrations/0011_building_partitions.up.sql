-- Each month partition divided by building (sql/README.md, "Partitions by building"): the month's
-- table `partitions.<parent>_yYYYYmMM` becomes partitioned by RANGE (sensor_id), one leaf per
-- building's block of ids (0010), `<parent>_yYYYYmMM_b<building>`; a load, compression, archive
-- or restore replaces one building-month. Every month there now holds one building's readings
-- (CU-BEMS, ids 0..32767): each becomes the leaf `_b1` of a new month table, keeping its rows,
-- indexes, owner and range. A constraint on its ids (one scan of the month) lets it attach without
-- another. Staging tables of loads that did not finish are dropped, as their next load would.
DO $$
DECLARE
    part record;
    leaf text;
BEGIN
    FOR part IN
        SELECT c.relname, p.relname AS parent, pg_get_expr(c.relpartbound, c.oid) AS bound,
               pg_get_userbyid(c.relowner) AS owner
        FROM pg_class AS c
        JOIN pg_inherits AS i ON i.inhrelid = c.oid
        JOIN pg_class AS p ON p.oid = i.inhparent
        WHERE c.relnamespace = 'partitions'::regnamespace AND c.relkind = 'r'
          AND p.relnamespace = 'public'::regnamespace
          AND p.relname IN ('sensor_readings_rows', 'hourly_sensor_stats', 'daily_sensor_stats',
                            'sensor_readings_days')
        ORDER BY c.relname
    LOOP
        leaf := part.relname || '_b1';
        EXECUTE format('ALTER TABLE public.%I DETACH PARTITION partitions.%I', part.parent,
                       part.relname);
        EXECUTE format('ALTER TABLE partitions.%I RENAME TO %I', part.relname, leaf);
        EXECUTE format('ALTER TABLE partitions.%I ADD CONSTRAINT %I '
                       'CHECK (sensor_id >= 0 AND sensor_id < 32768)', leaf, leaf || '_building');
        EXECUTE format('CREATE TABLE partitions.%I (LIKE public.%I INCLUDING DEFAULTS '
                       'INCLUDING CONSTRAINTS) PARTITION BY RANGE (sensor_id)',
                       part.relname, part.parent);
        EXECUTE format('ALTER TABLE partitions.%I OWNER TO %I', part.relname, part.owner);
        EXECUTE format('ALTER TABLE partitions.%I ATTACH PARTITION partitions.%I '
                       'FOR VALUES FROM (0) TO (32768)', part.relname, leaf);
        EXECUTE format('ALTER TABLE public.%I ATTACH PARTITION partitions.%I %s', part.parent,
                       part.relname, part.bound);
    END LOOP;
    FOR part IN
        SELECT c.relname FROM pg_class AS c
        WHERE c.relnamespace = 'partitions'::regnamespace AND c.relkind = 'r'
          AND NOT EXISTS (SELECT 1 FROM pg_inherits AS i WHERE i.inhrelid = c.oid)
    LOOP
        EXECUTE format('DROP TABLE partitions.%I', part.relname);
    END LOOP;
END
$$;
