-- The schemas a backup holds and a restore replaces: the pipeline's own. Schema auth only where
-- migration 0004 created it (its auth.uid() shim, marked by the comment); Supabase's auth and the
-- provider's other managed schemas (extensions, storage, graphql, realtime, ...) are never ours.
SELECT nspname
FROM pg_namespace
WHERE nspname IN ('public', 'partitions', 'private', 'api')
   OR (nspname = 'auth' AND obj_description(oid, 'pg_namespace') LIKE 'bangkok_pipeline:%')
ORDER BY nspname
