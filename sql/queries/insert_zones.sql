-- Floors and zones named by a header, each once (idempotent).
WITH building AS (SELECT building_id FROM buildings WHERE name = %(building)s),
floor_rows AS (
    INSERT INTO floors (building_id, floor)
    SELECT building_id, %(floor)s FROM building
    ON CONFLICT DO NOTHING
)
INSERT INTO zones (building_id, floor, zone)
SELECT building_id, %(floor)s, zone FROM building, unnest(%(zones)s::smallint[]) AS zone
ON CONFLICT DO NOTHING
