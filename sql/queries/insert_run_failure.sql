INSERT INTO run_failures (run_id, job_name, partition_key, failed_steps, error_summary,
                          failed_at, alerted)
VALUES (%(run_id)s, %(job_name)s, %(partition_key)s, %(failed_steps)s, %(error_summary)s,
        %(failed_at)s, %(alerted)s)
ON CONFLICT (run_id) DO NOTHING
