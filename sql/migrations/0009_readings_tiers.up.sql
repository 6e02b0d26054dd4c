-- Two tiers of readings (sql/README.md, "Compressed months"). A month's readings are either rows,
-- in `sensor_readings_rows` (the partitioned table that was `sensor_readings`, its partitions
-- renamed `sensor_readings_rows_yYYYYmMM`), or compressed, in `sensor_readings_days`: one row per
-- sensor and Bangkok day holding the day's 1,440 minute slots (NULL = no reading) and the
-- summaries aggregate queries use without decompressing. `sensor_readings` becomes the view of
-- both, so every reader sees the same (ts, sensor_id, value) rows whatever the tier.

ALTER TABLE sensor_readings RENAME TO sensor_readings_rows;
ALTER INDEX sensor_readings_sensor_ts_brin RENAME TO sensor_readings_rows_sensor_ts_brin;
ALTER INDEX sensor_readings_ts_brin RENAME TO sensor_readings_rows_ts_brin;
DO $$
DECLARE
    part record;
BEGIN
    -- Attached months and any staging table a crashed load left (`..._yYYYYmMM_<token>`).
    FOR part IN
        SELECT c.relname FROM pg_class AS c
        WHERE c.relnamespace = 'partitions'::regnamespace AND c.relkind IN ('r', 'p')
          AND c.relname ~ '^sensor_readings_y[0-9]{4}m[0-9]{2}'
    LOOP
        EXECUTE format('ALTER TABLE partitions.%I RENAME TO %I', part.relname,
                       'sensor_readings_rows' || substr(part.relname, 16));
    END LOOP;
END
$$;

CREATE TABLE sensor_readings_days (
    sensor_id smallint NOT NULL,
    day       date NOT NULL,
    n         smallint NOT NULL CHECK (n BETWEEN 1 AND 1440),
    min_value real NOT NULL,
    max_value real NOT NULL,
    sum_value double precision NOT NULL,
    vals      real[] NOT NULL CHECK (cardinality(vals) = 1440 AND array_lower(vals, 1) = 1),
    -- Per hour of the day (element h + 1 is the hour from h:00): readings, min, max, sum; min,
    -- max and sum NULL where no reading. Hourly statistics read these, not the 1,440 slots.
    hour_n    smallint[] NOT NULL CHECK (cardinality(hour_n) = 24 AND array_lower(hour_n, 1) = 1),
    hour_min  real[] NOT NULL CHECK (cardinality(hour_min) = 24),
    hour_max  real[] NOT NULL CHECK (cardinality(hour_max) = 24),
    hour_sum  double precision[] NOT NULL CHECK (cardinality(hour_sum) = 24),
    PRIMARY KEY (sensor_id, day)
) PARTITION BY RANGE (day);

-- Slot i (1-based) of day d is the minute starting at d + (i - 1) minutes, Bangkok time (UTC+7,
-- no daylight saving).
CREATE VIEW sensor_readings WITH (security_invoker = true) AS
SELECT r.ts, r.sensor_id, r.value
FROM sensor_readings_rows AS r
UNION ALL
SELECT (d.day + (s.slot - 1) * interval '1 minute') AT TIME ZONE 'Asia/Bangkok',
       d.sensor_id, s.value
FROM sensor_readings_days AS d
CROSS JOIN LATERAL unnest(d.vals) WITH ORDINALITY AS s(value, slot)
WHERE s.value IS NOT NULL;

-- Hourly statistics of compressed months, from the hourly summaries of their days: a compressed
-- month has no hourly partition (as rows the history's hourly statistics take ~250 MB; the
-- summaries add ~21 % to the days and answer a sensor-month of hours ~14x faster than unnesting
-- the slots). `day` is there for pruning: a condition on it reaches the days' primary key, one on
-- `bucket` cannot.
CREATE VIEW hourly_sensor_stats_compressed WITH (security_invoker = true) AS
SELECT (d.day + (h.hour - 1) * interval '1 hour') AT TIME ZONE 'Asia/Bangkok' AS bucket,
       d.sensor_id, d.day, h.n::integer AS n, h.total / h.n AS avg_value, h.min_value,
       h.max_value, CASE WHEN s.unit = 'kW' THEN h.total / 60 END AS energy_kwh
FROM sensor_readings_days AS d
JOIN sensors AS s USING (sensor_id)
CROSS JOIN LATERAL unnest(d.hour_n, d.hour_min, d.hour_max, d.hour_sum) WITH ORDINALITY
    AS h(n, min_value, max_value, total, hour)
WHERE h.n > 0;

-- Hourly statistics of every month, whatever its tier (0002's view over both).
CREATE OR REPLACE VIEW hourly_aggregates WITH (security_invoker = true) AS
SELECT h.bucket, h.sensor_id, s.floor, s.zone, s.channel, s.kind, s.unit,
       h.n AS readings, h.avg_value, h.min_value, h.max_value, h.energy_kwh
FROM (
    SELECT bucket, sensor_id, n, avg_value, min_value, max_value, energy_kwh
    FROM hourly_sensor_stats
    UNION ALL
    SELECT bucket, sensor_id, n, avg_value, min_value, max_value, energy_kwh
    FROM hourly_sensor_stats_compressed
) AS h
JOIN sensors AS s USING (sensor_id);

-- Owned like the rows: the loader attaches and detaches the months (0004's hand-over rules).
GRANT CREATE ON SCHEMA public TO bangkok_loader;
ALTER TABLE sensor_readings_days OWNER TO bangkok_loader;
REVOKE CREATE ON SCHEMA public FROM bangkok_loader;
ALTER VIEW sensor_readings OWNER TO bangkok_owner;
ALTER VIEW hourly_sensor_stats_compressed OWNER TO bangkok_owner;

ALTER TABLE sensor_readings_days ENABLE ROW LEVEL SECURITY;
ALTER TABLE sensor_readings_days FORCE ROW LEVEL SECURITY;
CREATE POLICY service ON sensor_readings_days TO bangkok_loader USING (true) WITH CHECK (true);
CREATE POLICY api_read ON sensor_readings_days FOR SELECT TO bangkok_api
    USING (get_bit((SELECT private.visible_sensor_mask()), sensor_id) <> 0);
GRANT SELECT ON sensor_readings, sensor_readings_days, hourly_sensor_stats_compressed
    TO bangkok_api;
-- The loader's asset checks read the hours of compressed months (its reads of the other views come
-- from 0004), and compress / decompress refuse archived months, which it must see to do so.
GRANT SELECT ON hourly_sensor_stats_compressed, archived_months TO bangkok_loader;

SELECT private.seal_api_roles();
