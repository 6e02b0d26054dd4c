-- A fresh, unattached table shaped like a partitioned parent, with the month's range CHECK so
-- that ATTACH PARTITION can skip its validation scan.
CREATE TABLE {table} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE {table} ADD CONSTRAINT {check} CHECK ({column} >= {low} AND {column} < {high});
