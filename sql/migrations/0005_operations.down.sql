-- Undo 0005. The archive files stay where they are; without this ledger `archive restore` still
-- reads their manifests. pg_stat_statements goes only if 0005 created it (its comment says so).
DROP TABLE health_alerts;
DROP TABLE archived_months;
DO $$
BEGIN
    IF obj_description(
           (SELECT oid FROM pg_extension WHERE extname = 'pg_stat_statements'), 'pg_extension'
       ) LIKE 'bangkok_pipeline:%' THEN
        DROP EXTENSION pg_stat_statements;
    END IF;
END
$$;
