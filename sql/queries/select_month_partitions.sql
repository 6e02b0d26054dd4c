-- Every table in schema `partitions`: its parent if attached, size on disk (with indexes),
-- estimated rows (-1: never analyzed) and whether it holds any row at all.
SELECT c.relname, p.relname AS parent, pg_total_relation_size(c.oid) AS bytes,
       c.reltuples::bigint AS estimated_rows
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
LEFT JOIN pg_inherits AS i ON i.inhrelid = c.oid
LEFT JOIN pg_class AS p ON p.oid = i.inhparent
WHERE n.nspname = 'partitions' AND c.relkind IN ('r', 'p')
ORDER BY c.relname
