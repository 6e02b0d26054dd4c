"""The month lock: one per building and month, so that a building-month's loads, compressions,
archives and restores never interleave, while other buildings' loads of the same month go on.

Why a row lock and not an advisory lock: advisory locks need no privilege, so any login (a tenant's
API role included) could hold a month's key forever and stall its loads. The lock is the
building-month's row in `month_locks` (migration 0006; keyed by building since 0012), a table
only bangkok_loader and bangkok_owner may touch, locked FOR UPDATE by a transaction on a sibling
connection that stays open while the work runs: the work itself runs several transactions on its
own connection. If the process dies, its connections close and the server releases the lock.
"""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.db.connection import lock_holder, table_exists
from bangkok_pipeline.db.queries import query
from bangkok_pipeline.source.layout import BUILDING_ID

_log = logging.getLogger(__name__)
_ADD_ROW = "INSERT INTO month_locks (building_id, month) VALUES (%s, %s) ON CONFLICT DO NOTHING"
_LOCK = "SELECT month FROM month_locks WHERE building_id = %s AND month = %s FOR UPDATE"
_LOCK_UNLESS_LOCKED = (
    "SELECT month FROM month_locks WHERE building_id = %s AND month = %s FOR UPDATE SKIP LOCKED"
)


class MonthBusy(RuntimeError):
    """Another session holds the month's lock (raised only when not waiting)."""


class MonthLockLost(RuntimeError):
    """The connection holding the month's lock is gone: the month may no longer be ours."""


class MonthLock:
    """A held month lock; `ensure_held()` before a step that must not run without it."""

    def __init__(self, month: Month, holder: psycopg.Connection) -> None:
        self.month = month
        self._holder = holder

    def ensure_held(self) -> None:
        """Raise MonthLockLost unless the holding transaction is still alive."""
        try:
            self._holder.execute("SELECT 1")
        except psycopg.Error as error:
            raise MonthLockLost(
                f"lost the lock of {self.month} (its connection failed: {error})"
            ) from error


@contextmanager
def month_lock(
    conn: psycopg.Connection,
    month: Month,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
    building: int = BUILDING_ID,
) -> Iterator[MonthLock]:
    """Hold the lock of `building`'s `month` for the block, on a new connection opened like
    `conn` (same server, login and options).

    `wait=True`: wait for another holder, calling `on_wait` (default: log a warning) once with
    what it waits for. `wait=False`: raise MonthBusy at once instead.
    """
    key = str(month) if building == BUILDING_ID else f"{month} of building {building}"
    with lock_holder(conn, f"bangkok_pipeline month lock {key}") as holder:
        try:
            holder.execute(_ADD_ROW, (building, month))
        except psycopg.errors.UndefinedTable:
            raise RuntimeError(
                "table month_locks is missing: migrate the database (bangkok-pipeline db migrate)"
            ) from None
        holder.commit()
        if holder.execute(_LOCK_UNLESS_LOCKED, (building, month)).fetchone() is None:
            if not wait:
                raise MonthBusy(f"another load, premake, archive or restore holds {key}")
            (on_wait or _log.warning)(
                f"waiting for the lock of {key}: another load, premake, archive "
                "or restore of the month holds it"
            )
            holder.execute(_LOCK, (building, month))
        yield MonthLock(month, holder)


def held_months(conn: psycopg.Connection) -> set[Month]:
    """Months whose lock, of any building, some session holds now (empty before migration
    0006). Reads the rows' lockers instead of probing with a lock of its own, so it never makes
    a premake skip or an archive refuse."""
    if not table_exists(conn, "month_locks"):
        return set()
    return {
        Month.of(month) for (month,) in conn.execute(query("select_held_month_locks")).fetchall()
    }
