-- Tables, views, sequences and foreign tables in the given schemas (the pipeline's) that no
-- extension owns: zero means the database is empty enough to restore a backup into.
SELECT count(*)
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  AND n.nspname = ANY (%(schemas)s)
  AND NOT EXISTS (
      SELECT FROM pg_depend AS d
      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
