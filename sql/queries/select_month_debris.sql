-- Tables of one month left unattached in `partitions` by a load that did not finish.
SELECT c.relname
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = 'partitions' AND c.relkind = 'r'
  AND EXISTS (SELECT 1 FROM unnest(%(prefixes)s::text[]) AS p WHERE starts_with(c.relname, p))
  AND NOT EXISTS (SELECT 1 FROM pg_inherits AS i WHERE i.inhrelid = c.oid)
