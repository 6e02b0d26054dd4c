-- Every building (or the one `building_id` names) with its catalog: floors, zones, sensors and
-- the range of its sensor ids.
SELECT b.building_id, b.name, b.source,
       (SELECT count(*) FROM floors AS f WHERE f.building_id = b.building_id) AS floors,
       (SELECT count(*) FROM zones AS z WHERE z.building_id = b.building_id) AS zones,
       count(s.sensor_id) AS sensors,
       min(s.sensor_id) AS first_sensor_id,
       max(s.sensor_id) AS last_sensor_id
FROM buildings AS b
LEFT JOIN sensors AS s USING (building_id)
WHERE %(building_id)s::smallint IS NULL OR b.building_id = %(building_id)s
GROUP BY b.building_id
ORDER BY b.building_id
