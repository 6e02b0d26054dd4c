-- This database's statements whose mean execution time is over the threshold, slowest first.
-- Bulk work that is slow by design is left out: utility statements (COPY, CREATE INDEX, ALTER,
-- ANALYZE, ...) and statements that name a table in schema `partitions` (loads, reconciliation
-- and archiving address month tables directly; readers and the API go through the parents).
SELECT s.calls, s.mean_exec_time, s.max_exec_time,
       left(regexp_replace(s.query, '\s+', ' ', 'g'), 160) AS query
FROM {view} AS s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND s.mean_exec_time > %(threshold_ms)s
  AND s.query !~ '"?partitions"?\.'
  AND s.query !~* ('^\s*(copy|create|alter|drop|analyze|vacuum|reindex|cluster|truncate|'
                   'refresh|do|set|reset|show|begin|start|commit|rollback|savepoint|'
                   'release|lock|grant|revoke|comment|checkpoint|discard|listen|notify)\M')
ORDER BY s.mean_exec_time DESC
LIMIT %(limit)s
