SELECT rows_loaded, rows_quarantined, rows_read, extract(epoch FROM finished_at - started_at)
FROM load_log
WHERE run_id = %(run_id)s AND status = 'succeeded'
ORDER BY load_id DESC
LIMIT 1
