-- Sensor ids and kinds of one floor, by source column.
SELECT s.source_column, s.sensor_id, s.kind
FROM sensors AS s JOIN buildings AS b USING (building_id)
WHERE b.name = %(building)s AND s.floor = %(floor)s
