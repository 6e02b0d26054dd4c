-- Called while holding the month's load lock: a load still 'running' has lost its process.
UPDATE load_log
SET status = 'failed', error = 'abandoned: the process running this load died', finished_at = now()
WHERE month = %(month)s AND status = 'running'
