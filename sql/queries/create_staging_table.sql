-- A fresh, unattached table shaped like a partitioned parent, with the month's and the building's
-- range CHECKs, so that attaching it to the month (and the month to the parent) skips the
-- validation scan.
CREATE TABLE {table} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE {table} ADD CONSTRAINT {check} CHECK ({column} >= {low} AND {column} < {high});
ALTER TABLE {table} ADD CONSTRAINT {building_check}
    CHECK (sensor_id >= {first} AND sensor_id < {beyond});
