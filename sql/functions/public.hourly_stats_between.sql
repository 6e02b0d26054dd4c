-- requires: 0010_many_buildings
-- Repeatable: applied by `bangkok-pipeline db migrate` after the versioned migrations, again
-- whenever this file changes (sql/README.md, "Repeatable objects"). Edit the function here.

-- Hourly statistics of the hours starting in [p_from, p_to), from both tiers, each pruned to the
-- period: the stored hours of months of rows by bucket, the compressed days by day (only the
-- days that overlap are unnested). The fast path for hourly_aggregates over compressed months,
-- like sensor_readings_between for the readings: inlined into the caller's query, so further
-- conditions (sensor_id = ...) and the caller's Row Level Security apply as if written out.
CREATE OR REPLACE FUNCTION public.hourly_stats_between(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (bucket timestamptz, sensor_id integer, n integer, avg_value double precision,
               min_value real, max_value real, energy_kwh double precision)
LANGUAGE sql STABLE
AS $$
    SELECT h.bucket, h.sensor_id, h.n, h.avg_value, h.min_value, h.max_value, h.energy_kwh
    FROM public.hourly_sensor_stats AS h
    WHERE h.bucket >= p_from AND h.bucket < p_to
    UNION ALL
    SELECT c.bucket, c.sensor_id, c.n, c.avg_value, c.min_value, c.max_value, c.energy_kwh
    FROM public.hourly_sensor_stats_compressed AS c
    WHERE c.day BETWEEN (p_from AT TIME ZONE 'Asia/Bangkok')::date
                    AND (p_to AT TIME ZONE 'Asia/Bangkok')::date
      AND c.bucket >= p_from AND c.bucket < p_to
$$;
ALTER FUNCTION public.hourly_stats_between(timestamptz, timestamptz) OWNER TO bangkok_owner;
REVOKE ALL ON FUNCTION public.hourly_stats_between(timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.hourly_stats_between(timestamptz, timestamptz)
    TO bangkok_api, bangkok_loader;
SELECT private.seal_api_roles();
