-- Operations: statement statistics for `health`, the ledger of archived months, and the alerts
-- the health sensor raised.

-- pg_stat_statements answers "which statements are slow". It works only where the server preloads
-- it (shared_preload_libraries: the embedded server does); creating it needs a superuser or the
-- provider's extension page, so a migrator without that right goes on without it (`health` says
-- how to enable it).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')
       AND EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements') THEN
        BEGIN
            CREATE EXTENSION pg_stat_statements;
            COMMENT ON EXTENSION pg_stat_statements IS
                'bangkok_pipeline: created by migration 0005 for `bangkok-pipeline health`';
        EXCEPTION WHEN insufficient_privilege OR feature_not_supported THEN
            RAISE NOTICE 'pg_stat_statements not created (%); health will say how to enable it',
                SQLERRM;
        END;
    END IF;
END
$$;

-- One row per month whose raw readings left the database for a Parquet file, written only in the
-- transaction that detaches and drops the partition, after the file was verified against it.
CREATE TABLE archived_months (
    month              date PRIMARY KEY CHECK (extract(day FROM month) = 1),
    file_name          text NOT NULL,
    file_bytes         bigint NOT NULL CHECK (file_bytes > 0),
    file_sha256        text NOT NULL CHECK (file_sha256 ~ '^[0-9a-f]{64}$'),
    row_count          bigint NOT NULL CHECK (row_count >= 0),
    value_sum          double precision NOT NULL,
    checksum           numeric NOT NULL,
    partition_bytes    bigint NOT NULL CHECK (partition_bytes >= 0),
    aggregates_dropped boolean NOT NULL DEFAULT false,
    archived_at        timestamptz NOT NULL DEFAULT now(),
    restored_at        timestamptz
);

-- Critical health findings the sensor reported (and posted to ALERT_WEBHOOK_URL when set).
CREATE TABLE health_alerts (
    alert_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    concern    text NOT NULL,
    status     text NOT NULL CHECK (status IN ('critical', 'resolved')),
    message    text NOT NULL,
    details    jsonb NOT NULL DEFAULT '{}',
    alerted    boolean NOT NULL DEFAULT false,
    raised_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX health_alerts_raised_at_idx ON health_alerts (raised_at DESC);

-- Where migration 0004 made bangkok_owner the owner of the schema, it owns these too.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bangkok_owner') THEN
        IF pg_has_role(current_user, 'bangkok_owner', 'USAGE') THEN
            ALTER TABLE archived_months OWNER TO bangkok_owner;
            ALTER TABLE health_alerts OWNER TO bangkok_owner;
        END IF;
    END IF;
END
$$;
