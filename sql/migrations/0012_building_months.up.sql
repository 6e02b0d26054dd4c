-- The building-month as the unit of the load's side tables and of the lock (0011 made it the unit
-- of the partitions): a load of one building's month records itself, sets its quarantine aside,
-- and locks, for that building only, so two buildings' loads of one month neither wait for nor
-- overwrite each other. Every row so far is the first building's (CU-BEMS). The tables keyed by
-- sensor (reconciliation, coverage, gaps, latest readings) need nothing: a sensor's id names its
-- building (0010).
ALTER TABLE load_log ADD COLUMN building_id smallint NOT NULL DEFAULT 1;
ALTER TABLE load_log ALTER COLUMN building_id DROP DEFAULT;
DROP INDEX load_log_month_idx;
CREATE INDEX load_log_month_idx ON load_log (building_id, month, started_at DESC);

ALTER TABLE quarantine ADD COLUMN building_id smallint NOT NULL DEFAULT 1;
ALTER TABLE quarantine ALTER COLUMN building_id DROP DEFAULT;
DROP INDEX quarantine_month_idx;
CREATE INDEX quarantine_month_idx ON quarantine (building_id, month, reason);

ALTER TABLE month_locks ADD COLUMN building_id smallint NOT NULL DEFAULT 1;
ALTER TABLE month_locks ALTER COLUMN building_id DROP DEFAULT;
ALTER TABLE month_locks DROP CONSTRAINT month_locks_pkey;
ALTER TABLE month_locks ADD PRIMARY KEY (building_id, month);
