-- Core schema: the sensor catalog, monthly-partitioned readings, quarantine and load log.

CREATE TABLE buildings (
    building_id smallint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    timezone    text NOT NULL DEFAULT 'Asia/Bangkok'
);

INSERT INTO buildings (name) VALUES ('Chamchuri 5');

CREATE TABLE floors (
    building_id smallint NOT NULL REFERENCES buildings,
    floor       smallint NOT NULL CHECK (floor BETWEEN 1 AND 200),
    PRIMARY KEY (building_id, floor)
);

CREATE TABLE zones (
    building_id smallint NOT NULL,
    floor       smallint NOT NULL,
    zone        smallint NOT NULL CHECK (zone BETWEEN 1 AND 100),
    PRIMARY KEY (building_id, floor, zone),
    FOREIGN KEY (building_id, floor) REFERENCES floors
);

CREATE TABLE sensors (
    sensor_id     smallint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    building_id   smallint NOT NULL,
    floor         smallint NOT NULL,
    zone          smallint NOT NULL,
    channel       text NOT NULL CHECK (channel ~ '^(AC[1-9][0-9]*|Light|Plug|S[1-9][0-9]*)$'),
    kind          text NOT NULL CHECK (kind IN ('ac', 'light', 'plug',
                                                'temperature', 'humidity', 'illuminance')),
    unit          text NOT NULL CHECK (unit IN ('kW', 'degC', 'RH%', 'lux')),
    source_column text NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (building_id, floor, source_column),
    FOREIGN KEY (building_id, floor, zone) REFERENCES zones,
    CHECK ((kind IN ('ac', 'light', 'plug')) = (unit = 'kW'))
);

-- ~161 M rows: 8-byte ts, 2-byte sensor, 4-byte value; no per-row surrogate key.
CREATE TABLE sensor_readings (
    ts        timestamptz NOT NULL,
    sensor_id smallint NOT NULL,
    value     real NOT NULL CHECK (value = value AND value > '-Infinity' AND value < 'Infinity')
) PARTITION BY RANGE (ts);

-- Rows are loaded sorted by (sensor_id, ts): a two-column BRIN answers "one sensor, a time
-- window" from a few block ranges, and a one-column BRIN on ts serves whole-building scans.
CREATE INDEX sensor_readings_sensor_ts_brin ON sensor_readings
    USING brin (sensor_id, ts) WITH (pages_per_range = 16);
CREATE INDEX sensor_readings_ts_brin ON sensor_readings
    USING brin (ts) WITH (pages_per_range = 32);

CREATE TABLE load_log (
    load_id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    month               date NOT NULL CHECK (extract(day FROM month) = 1),
    run_id              text,
    status              text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    source_fingerprints jsonb NOT NULL DEFAULT '{}',
    rows_read           bigint CHECK (rows_read >= 0),
    rows_loaded         bigint CHECK (rows_loaded >= 0),
    rows_quarantined    bigint CHECK (rows_quarantined >= 0),
    checksum            text,
    timings             jsonb NOT NULL DEFAULT '{}',
    error               text,
    started_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,
    CHECK ((status = 'running') = (finished_at IS NULL))
);
CREATE INDEX load_log_month_idx ON load_log (month, started_at DESC);

CREATE TABLE quarantine (
    quarantine_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    month         date NOT NULL CHECK (extract(day FROM month) = 1),
    run_id        text,
    source_file   text NOT NULL,
    line_no       integer NOT NULL CHECK (line_no >= 1),
    column_name   text,
    raw_text      text NOT NULL,
    reason        text NOT NULL CHECK (reason IN (
                      'unparseable_row', 'invalid_timestamp', 'invalid_number', 'out_of_range',
                      'conflicting_duplicate', 'incomplete_last_line', 'outside_partition',
                      'duplicate_reading')),
    detail        text NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX quarantine_month_idx ON quarantine (month, reason);
