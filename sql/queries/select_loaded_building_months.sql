-- Every building-month with at least one successful load.
SELECT DISTINCT building_id, month
FROM load_log
WHERE status = 'succeeded'
