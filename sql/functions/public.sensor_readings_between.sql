-- requires: 0010_many_buildings
-- Repeatable: applied by `bangkok-pipeline db migrate` after the versioned migrations, again
-- whenever this file changes (sql/README.md, "Repeatable objects"). Edit the function here.

-- The readings of [p_from, p_to) from both tiers, each pruned to the period: the rows by ts, the
-- compressed days by day (only the days that overlap are unnested). The fast path for ad-hoc
-- SQL: the view `sensor_readings` cannot turn a condition on ts into one on the compressed days,
-- so over compressed months `WHERE ts >= ... AND ts < ...` unnests every day of every compressed
-- month. A plain SQL function of one query (STABLE, SECURITY INVOKER, no SET): PostgreSQL inlines
-- it into the caller's query, so further conditions (sensor_id = ...) and the caller's Row Level
-- Security apply as if it were written out (sql/README.md, "Compressed months", has the plans).
CREATE OR REPLACE FUNCTION public.sensor_readings_between(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (ts timestamptz, sensor_id integer, value real)
LANGUAGE sql STABLE
AS $$
    SELECT r.ts, r.sensor_id, r.value
    FROM public.sensor_readings_rows AS r
    WHERE r.ts >= p_from AND r.ts < p_to
    UNION ALL
    SELECT m.ts, d.sensor_id, s.value
    FROM public.sensor_readings_days AS d
    CROSS JOIN LATERAL unnest(d.vals) WITH ORDINALITY AS s(value, slot)
    CROSS JOIN LATERAL (
        SELECT (d.day + (s.slot - 1) * interval '1 minute') AT TIME ZONE 'Asia/Bangkok'
    ) AS m(ts)
    WHERE d.day BETWEEN (p_from AT TIME ZONE 'Asia/Bangkok')::date
                    AND (p_to AT TIME ZONE 'Asia/Bangkok')::date
      AND s.value IS NOT NULL AND m.ts >= p_from AND m.ts < p_to
$$;
ALTER FUNCTION public.sensor_readings_between(timestamptz, timestamptz) OWNER TO bangkok_owner;
REVOKE ALL ON FUNCTION public.sensor_readings_between(timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.sensor_readings_between(timestamptz, timestamptz)
    TO bangkok_api, bangkok_loader;
SELECT private.seal_api_roles();
