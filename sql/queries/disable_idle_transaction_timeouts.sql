-- For a lock-holding connection (month lock, migrator lock), which sits idle in its transaction
-- while the work runs: a server, database or role setting that ends such transactions
-- (idle_in_transaction_session_timeout; transaction_timeout from PostgreSQL 17 on) would release
-- the lock under the running work.
SELECT set_config(name, '0', false)
FROM pg_settings
WHERE name IN ('idle_in_transaction_session_timeout', 'transaction_timeout')
