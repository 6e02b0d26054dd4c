-- Months whose raw readings are archived and not restored, of one building (or, with NULL, of
-- any), and whether their aggregates were dropped too (by every building archived).
SELECT month, bool_and(aggregates_dropped)
FROM archived_months
WHERE restored_at IS NULL
  AND (%(building)s::smallint IS NULL OR building_id = %(building)s)
GROUP BY month
