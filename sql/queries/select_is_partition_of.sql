-- Whether `child` is attached as a partition of `parent` (both qualified names; a missing table
-- is not attached).
SELECT 1
FROM pg_inherits
WHERE inhrelid = to_regclass(%(child)s) AND inhparent = to_regclass(%(parent)s)
