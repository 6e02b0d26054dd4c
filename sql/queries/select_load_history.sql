-- Per month of one building: when it last loaded successfully (and how many readings), and how
-- the latest attempt ended.
SELECT to_char(month, 'YYYY-MM') AS month,
       max(finished_at) FILTER (WHERE status = 'succeeded') AS last_success,
       (array_agg(rows_loaded ORDER BY load_id DESC)
            FILTER (WHERE status = 'succeeded'))[1] AS rows_loaded,
       (array_agg(status ORDER BY load_id DESC))[1] AS latest_status,
       (array_agg(error ORDER BY load_id DESC))[1] AS latest_error
FROM load_log
WHERE building_id = %(building)s
GROUP BY month
ORDER BY month
