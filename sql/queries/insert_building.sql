-- Building `name` with its source: added when missing, its source set when it had none (the
-- building 0001 seeds). Returns the building and the source it is registered with, which differs
-- from %(source)s when it already had another one.
WITH found AS (
    SELECT building_id, source FROM buildings WHERE name = %(name)s
),
added AS (
    INSERT INTO buildings (name, source)
    SELECT %(name)s, %(source)s
    WHERE NOT EXISTS (SELECT FROM found)
    RETURNING building_id, source
),
sourced AS (
    UPDATE buildings AS b SET source = %(source)s
    FROM found AS f
    WHERE b.building_id = f.building_id AND f.source IS NULL
    RETURNING b.building_id, b.source
)
SELECT building_id, source FROM added
UNION ALL SELECT building_id, source FROM sourced
UNION ALL SELECT building_id, source FROM found WHERE source IS NOT NULL
