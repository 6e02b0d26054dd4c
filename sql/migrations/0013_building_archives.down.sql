-- Undo 0013: only the first building's archives fit a ledger keyed by month; refused while
-- another building has one (restore it, or remove its row, first).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM public.archived_months WHERE building_id <> 1) THEN
        RAISE EXCEPTION 'archives of buildings after the first are recorded; before 0013 the '
            'ledger held one building: restore those months first'
            USING ERRCODE = 'object_in_use';
    END IF;
END
$$;
ALTER TABLE archived_months DROP CONSTRAINT archived_months_pkey;
ALTER TABLE archived_months DROP COLUMN building_id;
ALTER TABLE archived_months ADD PRIMARY KEY (month);
