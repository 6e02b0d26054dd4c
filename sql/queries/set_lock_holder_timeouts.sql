-- For a lock-holding connection (month lock, migrator lock), which sits idle in its transaction
-- while the work runs: a server, database or role setting that ends such transactions
-- (idle_in_transaction_session_timeout; transaction_timeout from PostgreSQL 17 on) would release
-- the lock under the running work. Its one wait, for a lock that only other pipeline work holds,
-- has no lock timeout: the statement timeout (BANGKOK_STATEMENT_TIMEOUT_SECONDS) bounds it.
SELECT set_config(
    name, CASE name WHEN 'statement_timeout' THEN %(statement_timeout)s ELSE '0' END, false
)
FROM pg_settings
WHERE name IN (
    'idle_in_transaction_session_timeout', 'transaction_timeout', 'lock_timeout', 'statement_timeout'
)
