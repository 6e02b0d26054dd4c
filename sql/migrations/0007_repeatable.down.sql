-- Undo 0007: the record goes; the functions stay as they were last applied (0004's downgrade drops
-- them with schema api). The next `migrate` past 0007 applies every repeatable again.
DROP TABLE schema_repeatables;
