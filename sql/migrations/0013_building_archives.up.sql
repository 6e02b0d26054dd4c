-- Archives per building-month: the ledger of archived months is keyed by building too, so that
-- one building's month can leave the database for Parquet (and come back) while another
-- building's same month stays. Every row so far is the first building's (CU-BEMS).
ALTER TABLE archived_months ADD COLUMN building_id smallint NOT NULL DEFAULT 1;
ALTER TABLE archived_months ALTER COLUMN building_id DROP DEFAULT;
ALTER TABLE archived_months DROP CONSTRAINT archived_months_pkey;
ALTER TABLE archived_months ADD PRIMARY KEY (building_id, month);
