-- The building `building_id` or `name` designates (names are unique); the id wins over a name.
SELECT building_id, name
FROM buildings
WHERE building_id = %(building_id)s OR name = %(name)s
ORDER BY (building_id = %(building_id)s) IS TRUE DESC
LIMIT 1
