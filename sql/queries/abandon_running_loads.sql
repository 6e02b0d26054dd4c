-- Called while holding the building-month's lock: a load of it still 'running' has lost its
-- process.
UPDATE load_log
SET status = 'failed', error = 'abandoned: the process running this load died', finished_at = now()
WHERE building_id = %(building)s AND month = %(month)s AND status = 'running'
