-- The archive ledger, newest month first, each building's in building order.
SELECT a.month, b.name AS building, a.file_name, a.row_count, a.file_bytes, a.partition_bytes,
       a.aggregates_dropped, a.archived_at, a.restored_at
FROM archived_months AS a
JOIN buildings AS b USING (building_id)
ORDER BY a.month DESC, a.building_id
