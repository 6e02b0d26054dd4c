-- Tables that must have Row Level Security enabled and forced, but do not (or are missing).
SELECT t.name
FROM unnest(%(tables)s::text[]) AS t(name)
LEFT JOIN pg_class AS c ON c.oid = to_regclass(format('public.%%I', t.name))
WHERE c.oid IS NULL OR NOT (c.relrowsecurity AND c.relforcerowsecurity)
ORDER BY 1
