-- Ingestion: a schema for month partitions, per-sensor aggregates partitioned like the readings,
-- the reconciliation ledger, and the views the plans name.

-- Month partitions (attached ones and those being built) live apart from the parent tables, so
-- API roles can be kept out of them entirely: a partition queried directly skips the parent's RLS.
CREATE SCHEMA partitions;

CREATE TABLE hourly_sensor_stats (
    bucket     timestamptz NOT NULL,
    sensor_id  smallint NOT NULL,
    n          integer NOT NULL CHECK (n BETWEEN 1 AND 60),
    avg_value  double precision NOT NULL,
    min_value  real NOT NULL,
    max_value  real NOT NULL,
    energy_kwh double precision,
    CHECK (min_value <= max_value)
) PARTITION BY RANGE (bucket);
CREATE UNIQUE INDEX hourly_sensor_stats_key ON hourly_sensor_stats (sensor_id, bucket);

-- `day` is the Bangkok calendar day, so a month's days fall in that month's partition.
CREATE TABLE daily_sensor_stats (
    day        date NOT NULL,
    sensor_id  smallint NOT NULL,
    n          integer NOT NULL CHECK (n BETWEEN 1 AND 1440),
    avg_value  double precision NOT NULL,
    min_value  real NOT NULL,
    max_value  real NOT NULL,
    energy_kwh double precision,
    CHECK (min_value <= max_value)
) PARTITION BY RANGE (day);
CREATE UNIQUE INDEX daily_sensor_stats_key ON daily_sensor_stats (sensor_id, day);

-- Per sensor and month: what the validated frame held and what the database holds.
CREATE TABLE reconciliation (
    month       date NOT NULL CHECK (extract(day FROM month) = 1),
    sensor_id   smallint NOT NULL REFERENCES sensors,
    frame_count bigint NOT NULL,
    frame_sum   double precision NOT NULL,
    frame_hash  numeric NOT NULL,
    db_count    bigint,
    db_sum      double precision,
    db_hash     numeric,
    run_id      text,
    checked_at  timestamptz NOT NULL DEFAULT now(),
    matches     boolean GENERATED ALWAYS AS (
                    frame_count = db_count AND frame_hash = db_hash
                    AND abs(frame_sum - db_sum) <= 1e-9 * greatest(1.0, abs(frame_sum))) STORED,
    PRIMARY KEY (month, sensor_id)
);

-- Coverage map of each loaded month: present vs expected minutes per sensor, and every gap.
CREATE TABLE sensor_coverage (
    month               date NOT NULL CHECK (extract(day FROM month) = 1),
    sensor_id           smallint NOT NULL REFERENCES sensors,
    present_minutes     integer NOT NULL CHECK (present_minutes >= 0),
    expected_minutes    integer NOT NULL CHECK (expected_minutes > 0),
    gap_segments        integer NOT NULL CHECK (gap_segments >= 0),
    longest_gap_minutes integer NOT NULL CHECK (longest_gap_minutes >= 0),
    PRIMARY KEY (month, sensor_id),
    CHECK (present_minutes <= expected_minutes)
);

CREATE TABLE reading_gaps (
    month     date NOT NULL CHECK (extract(day FROM month) = 1),
    sensor_id smallint NOT NULL REFERENCES sensors,
    gap_start timestamptz NOT NULL,
    gap_end   timestamptz NOT NULL,
    minutes   integer NOT NULL CHECK (minutes > 0),
    CHECK (gap_start < gap_end)
);
CREATE INDEX reading_gaps_month_sensor_idx ON reading_gaps (month, sensor_id, gap_start);

CREATE VIEW hourly_aggregates AS
SELECT h.bucket, h.sensor_id, s.floor, s.zone, s.channel, s.kind, s.unit,
       h.n AS readings, h.avg_value, h.min_value, h.max_value, h.energy_kwh
FROM hourly_sensor_stats AS h
JOIN sensors AS s USING (sensor_id);

CREATE VIEW daily_aggregates AS
SELECT d.day, d.sensor_id, s.floor, s.zone, s.channel, s.kind, s.unit,
       d.n AS readings, d.avg_value, d.min_value, d.max_value, d.energy_kwh
FROM daily_sensor_stats AS d
JOIN sensors AS s USING (sensor_id);

CREATE VIEW daily_floor_energy AS
SELECT d.day, s.building_id, s.floor, sum(d.energy_kwh) AS energy_kwh,
       count(DISTINCT d.sensor_id) AS sensors
FROM daily_sensor_stats AS d
JOIN sensors AS s USING (sensor_id)
WHERE s.unit = 'kW'
GROUP BY d.day, s.building_id, s.floor;
