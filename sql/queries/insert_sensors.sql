-- The sensors of one floor's header, each once (idempotent); new columns become new sensors.
INSERT INTO sensors (building_id, floor, zone, channel, kind, unit, source_column)
SELECT b.building_id, %(floor)s, c.zone, c.channel, c.kind, c.unit, c.source_column
FROM buildings AS b,
     unnest(%(zones)s::smallint[], %(channels)s::text[], %(kinds)s::text[], %(units)s::text[],
            %(columns)s::text[]) AS c(zone, channel, kind, unit, source_column)
WHERE b.name = %(building)s
ON CONFLICT (building_id, floor, source_column) DO NOTHING
