-- Months (yyyymm) whose load lock (month_load's advisory lock class) some session holds here.
SELECT objid::bigint AS month_key
FROM pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND classid = %(lock_class)s::oid
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
