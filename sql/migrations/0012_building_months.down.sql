-- Undo 0012: only the first building's rows fit the month-keyed tables; refused while another
-- building has loads or quarantined lines (0011's down refuses their partitions anyway).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM public.load_log WHERE building_id <> 1)
       OR EXISTS (SELECT 1 FROM public.quarantine WHERE building_id <> 1) THEN
        RAISE EXCEPTION 'loads of buildings after the first are recorded; before 0012 a month '
            'held one building: remove those buildings'' loads first'
            USING ERRCODE = 'object_in_use';
    END IF;
END
$$;
DELETE FROM month_locks WHERE building_id <> 1;
ALTER TABLE month_locks DROP CONSTRAINT month_locks_pkey;
ALTER TABLE month_locks ADD PRIMARY KEY (month);
ALTER TABLE month_locks DROP COLUMN building_id;

DROP INDEX quarantine_month_idx;
ALTER TABLE quarantine DROP COLUMN building_id;
CREATE INDEX quarantine_month_idx ON quarantine (month, reason);

DROP INDEX load_log_month_idx;
ALTER TABLE load_log DROP COLUMN building_id;
CREATE INDEX load_log_month_idx ON load_log (month, started_at DESC);
