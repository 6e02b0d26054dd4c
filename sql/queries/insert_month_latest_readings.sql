-- The month's last reading per sensor, after its old rows were deleted (an INSERT, not COPY:
-- sensor_latest_readings is under row level security, where COPY FROM is not allowed).
INSERT INTO sensor_latest_readings (month, sensor_id, ts, value)
SELECT %(month)s, l.sensor_id, l.ts, l.value
FROM unnest(%(sensor_ids)s::integer[], %(ts)s::timestamptz[], %(values)s::real[])
    AS l(sensor_id, ts, value)
