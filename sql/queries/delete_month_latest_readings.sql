-- The building-month's latest readings, before the new ones go in (inside the swap).
DELETE FROM sensor_latest_readings
WHERE month = %(month)s AND sensor_id >= %(first)s AND sensor_id < %(beyond)s
