SELECT count(*) FILTER (WHERE backend_type = 'client backend'),
       current_setting('max_connections')::int
FROM pg_stat_activity
