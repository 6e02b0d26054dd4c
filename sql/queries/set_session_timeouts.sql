-- The pipeline's own limits for its session (BANGKOK_STATEMENT_TIMEOUT_SECONDS,
-- BANGKOK_LOCK_TIMEOUT_SECONDS), over any server, database or role default; and the server
-- process's id, to compare with the one the handshake announced (a pooler announces its own).
SELECT set_config('statement_timeout', %(statement_timeout)s, false),
       set_config('lock_timeout', %(lock_timeout)s, false),
       pg_backend_pid()
