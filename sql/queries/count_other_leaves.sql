-- The partitions of a month's partition (its buildings' leaves) other than `leaf`.
SELECT count(*)
FROM pg_inherits
WHERE inhparent = to_regclass(%(month)s)
  AND inhrelid IS DISTINCT FROM to_regclass(%(leaf)s)
