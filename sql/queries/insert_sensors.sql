-- The sensors of one floor's header, each once (idempotent); new columns become new sensors.
-- Only columns without a sensor are inserted; ON CONFLICT covers concurrent loads. Ids come from
-- the building's block (trigger `sensors_next_id`, migration 0010).
INSERT INTO sensors (building_id, floor, zone, channel, kind, unit, source_column)
SELECT b.building_id, %(floor)s, c.zone, c.channel, c.kind, c.unit, c.source_column
FROM buildings AS b,
     unnest(%(zones)s::smallint[], %(channels)s::text[], %(kinds)s::text[], %(units)s::text[],
            %(columns)s::text[]) AS c(zone, channel, kind, unit, source_column)
WHERE b.name = %(building)s
  AND NOT EXISTS (
      SELECT FROM sensors AS s
      WHERE s.building_id = b.building_id AND s.floor = %(floor)s
        AND s.source_column = c.source_column
  )
ON CONFLICT (building_id, floor, source_column) DO NOTHING
