-- Extensions a migration created (marked with a `bangkok_pipeline:` comment, as 0005 marks
-- pg_stat_statements): a backup carries them, one made by the provider stays the provider's.
SELECT extname FROM pg_extension
WHERE obj_description(oid, 'pg_extension') LIKE 'bangkok_pipeline:%' ORDER BY 1
