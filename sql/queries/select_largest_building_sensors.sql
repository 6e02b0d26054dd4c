SELECT building_id, min(sensor_id), max(sensor_id)
FROM sensors
GROUP BY building_id
ORDER BY count(*) DESC
LIMIT 1
