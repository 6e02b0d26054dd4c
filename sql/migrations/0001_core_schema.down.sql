-- Undo 0001: drops every reading, so only for a database you mean to empty.
DROP TABLE quarantine;
DROP TABLE load_log;
DROP TABLE sensor_readings;
DROP TABLE sensors;
DROP TABLE zones;
DROP TABLE floors;
DROP TABLE buildings;
