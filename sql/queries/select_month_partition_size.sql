-- Bytes on disk (with indexes and TOAST) of a month's partition: the sum over its leaves, since a
-- partitioned table has no storage of its own. 0 when it does not exist.
SELECT coalesce(sum(pg_total_relation_size(t.relid)), 0)::bigint
FROM pg_partition_tree(to_regclass(%(month)s)) AS t
WHERE t.isleaf
