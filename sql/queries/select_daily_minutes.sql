-- Minutes present per sensor and Bangkok day of one building-month (the coverage heatmap); a
-- sensor-day without a row has none.
SELECT sensor_id, day, n
FROM daily_sensor_stats
WHERE day >= %(first_day)s AND day < %(next_month)s
  AND sensor_id >= %(low)s AND sensor_id < %(high)s
