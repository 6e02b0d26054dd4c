-- The source digest of each month's last successful load of one building, as the sensor computes
-- digests.
SELECT DISTINCT ON (month) to_char(month, 'YYYY-MM') AS month,
       source_fingerprints ->> 'month_digest' AS digest
FROM load_log
WHERE building_id = %(building)s AND status = 'succeeded'
ORDER BY month, load_id DESC
