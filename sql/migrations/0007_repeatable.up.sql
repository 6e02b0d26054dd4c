-- Repeatable objects: `sql/functions/<schema>.<name>.sql`, one CREATE OR REPLACE each, applied by
-- the migrator after the versioned steps and again whenever the file changes (sql/README.md,
-- "Repeatable objects"). This table records which content each one last ran with; while it does
-- not exist (before this migration, or after its downgrade) no repeatable is applied.
CREATE TABLE schema_repeatables (
    name       text PRIMARY KEY,
    checksum   text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
    applied_at timestamptz NOT NULL DEFAULT now()
);
-- The schema's owner owns it (the migrating login is a member, see 0004); loaders read it, as they
-- read schema_migrations, so `migrate` with nothing to do needs no more than that. A side table:
-- bangkok_api and PUBLIC get nothing.
ALTER TABLE schema_repeatables OWNER TO bangkok_owner;
GRANT SELECT ON schema_repeatables TO bangkok_loader;
