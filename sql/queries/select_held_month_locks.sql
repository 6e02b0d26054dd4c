-- Months whose lock (their row in month_locks, held FOR UPDATE) some session holds now. A row lock
-- writes the locker's transaction id into the row's xmax, and every running transaction holds an
-- ExclusiveLock on its own id: the row is locked while that lock is granted. This reads, it locks
-- nothing, so it cannot make a premake skip or an archive refuse the way a probe with
-- FOR UPDATE SKIP LOCKED could. (Only FOR UPDATE is ever taken on these rows, so xmax is a plain
-- transaction id, never a MultiXactId.)
SELECT DISTINCT m.month
FROM month_locks AS m
WHERE EXISTS (
    SELECT FROM pg_locks AS l
    WHERE l.locktype = 'transactionid' AND l.transactionid = m.xmax
      AND l.mode = 'ExclusiveLock' AND l.granted
)
ORDER BY m.month
