-- Record an archived building-month (in the transaction that drops its partition); archiving it
-- again after a restore replaces the row.
INSERT INTO archived_months (building_id, month, file_name, file_bytes, file_sha256, row_count,
                             value_sum, checksum, partition_bytes, aggregates_dropped)
VALUES (%(building)s, %(month)s, %(file_name)s, %(file_bytes)s, %(file_sha256)s, %(row_count)s,
        %(value_sum)s, %(checksum)s, %(partition_bytes)s, %(aggregates_dropped)s)
ON CONFLICT (building_id, month) DO UPDATE
SET file_name = EXCLUDED.file_name, file_bytes = EXCLUDED.file_bytes,
    file_sha256 = EXCLUDED.file_sha256, row_count = EXCLUDED.row_count,
    value_sum = EXCLUDED.value_sum, checksum = EXCLUDED.checksum,
    partition_bytes = EXCLUDED.partition_bytes, aggregates_dropped = EXCLUDED.aggregates_dropped,
    archived_at = now(), restored_at = NULL
