-- A month's partition of a partitioned parent: empty, itself partitioned by building (ranges of
-- sensor ids, migration 0011). Attaching it creates the parent's indexes on it.
CREATE TABLE {table} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
PARTITION BY RANGE (sensor_id)
