-- The archive ledger, newest month first.
SELECT month, file_name, row_count, file_bytes, partition_bytes, aggregates_dropped,
       archived_at, restored_at
FROM archived_months
ORDER BY month DESC
