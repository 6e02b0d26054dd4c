-- Undo 0002: month partitions of the readings go with their schema.
DROP VIEW daily_floor_energy;
DROP VIEW daily_aggregates;
DROP VIEW hourly_aggregates;
DROP TABLE reading_gaps;
DROP TABLE sensor_coverage;
DROP TABLE reconciliation;
DROP TABLE daily_sensor_stats;
DROP TABLE hourly_sensor_stats;
DROP SCHEMA partitions CASCADE;
