"""A building-month partition's life, for the load, premake, archive and restore: one place for it.

The partitioned parents (`sensor_readings_rows`, `hourly_sensor_stats`, `daily_sensor_stats`,
`sensor_readings_days`) hold one partition per Bangkok calendar month in schema `partitions`,
named `<parent>_yYYYYmMM`, itself partitioned by building (migration 0011): a range of
`sensor_id` per building's block of 32,768 ids (0010), `<parent>_yYYYYmMM_b<building>`. The
building-month is the unit a load, compression, archive or restore replaces. It is built in
staging tables `<leaf>_<token>`: created like the parent with the month's and the building's range
CHECKs (so ATTACH needs no validation scan) and owned like the parent from the start (ATTACH,
DETACH and DROP need ownership, which no grant gives: with access control migrated,
`bangkok_loader` owns every partition, so whichever login builds a month, any loader can replace
or drop it later, and any loader can drop a staging table a crashed run left behind). Attaching
replaces the building-month's current leaf, if any, in the caller's transaction, so readers see
the old one or the new one; the month's table is created when its first leaf comes and dropped
with its last. Callers hold the month's lock (`month_lock`) around all of it.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import NamedTuple

import polars as pl
import psycopg
from psycopg import pq, sql

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.db.queries import query
from bangkok_pipeline.source.layout import BUILDING_ID
from bangkok_pipeline.warehouse import pgcopy

SCHEMA = "partitions"
BLOCK = 32768  # sensor ids per building (migration 0010)


def building_bounds(building: int) -> tuple[int, int]:
    """The building's range [low, high) of sensor ids: its block of BLOCK (0010)."""
    return (building - 1) * BLOCK, building * BLOCK


@dataclass(frozen=True)
class PartitionedTable:
    """One partitioned parent, the column it is ranged on, and how a month bounds it (daily
    tables by dates, the others by Bangkok-midnight instants)."""

    parent: str
    column: str
    daily: bool = False

    def name(self, month: Month) -> str:
        """The month's partition (partitioned by building): `sensor_readings_rows_y2018m07`."""
        return f"{self.parent}_{month.suffix}"

    def leaf_name(self, month: Month, building: int = BUILDING_ID) -> str:
        """The building-month's partition: `sensor_readings_rows_y2018m07_b1`."""
        return f"{self.name(month)}_b{building}"

    def staging_name(self, month: Month, token: str, building: int = BUILDING_ID) -> str:
        """A staging table of the building-month: `sensor_readings_rows_y2018m07_b1_<token>`."""
        return f"{self.leaf_name(month, building)}_{token}"

    def identifier(
        self, month: Month, token: str | None = None, building: int = BUILDING_ID
    ) -> sql.Identifier:
        """`partitions.<name>` of the building-month's partition, or of a staging table of it
        with `token`."""
        leaf = self.leaf_name(month, building)
        return sql.Identifier(SCHEMA, leaf if token is None else f"{leaf}_{token}")

    def month_identifier(self, month: Month) -> sql.Identifier:
        """`partitions.<name>` of the month's partition: every building's leaves."""
        return sql.Identifier(SCHEMA, self.name(month))

    def bounds(self, month: Month) -> tuple[date | datetime, date | datetime]:
        """The month's range [low, high) in the parent's partition key."""
        return (month.first_day, month.next().first_day) if self.daily else month.bounds


READINGS = PartitionedTable("sensor_readings_rows", "ts")
HOURLY = PartitionedTable("hourly_sensor_stats", "bucket")
DAILY = PartitionedTable("daily_sensor_stats", "day", daily=True)
TABLES = (READINGS, HOURLY, DAILY)
# A compressed month's readings (migration 0009), in place of its READINGS partition.
DAYS = PartitionedTable("sensor_readings_days", "day", daily=True)
ALL_TABLES = (*TABLES, DAYS)

_NAME = re.compile(
    rf"^(?P<parent>{'|'.join(t.parent for t in ALL_TABLES)})"
    r"_y(?P<year>\d{4})m(?P<month>\d{2})(?:_b(?P<building>[1-9]\d*))?(?:_(?P<suffix>\w+))?$"
)


class PartitionName(NamedTuple):
    parent: str
    month: Month
    building: int | None  # None: the month's table
    token: str | None  # a staging table's (never starting with `b` and a digit)


def parse_partition_name(name: str) -> PartitionName | None:
    """`sensor_readings_rows_y2018m07[_b1[_token]]` -> its parts; None for other names."""
    match = _NAME.match(name)
    if not match or not 1 <= int(match["month"]) <= 12:
        return None
    building = int(match["building"]) if match["building"] else None
    month = Month(int(match["year"]), int(match["month"]))
    return PartitionName(match["parent"], month, building, match["suffix"])


def _require_transaction(conn: psycopg.Connection, what: str) -> None:
    if conn.info.transaction_status != pq.TransactionStatus.INTRANS:
        raise RuntimeError(f"{what} must run inside a transaction (it is one step of several)")


def create_staging(
    conn: psycopg.Connection,
    table: PartitionedTable,
    month: Month,
    token: str,
    building: int = BUILDING_ID,
) -> sql.Identifier:
    """Create the building-month's staging table `<leaf>_<token>`: like the parent, with the
    month's and the building's range CHECKs, owned by the parent's owner. Call in a transaction;
    returns its identifier."""
    _require_transaction(conn, "create_staging")
    name = table.staging_name(month, token, building)
    target = table.identifier(month, token, building)
    low, high = table.bounds(month)
    first, beyond = building_bounds(building)
    conn.execute(
        sql.SQL(query("create_staging_table")).format(
            table=target,
            parent=sql.Identifier(table.parent),
            check=sql.Identifier(f"{name}_month"),
            column=sql.Identifier(table.column),
            low=sql.Literal(low),
            high=sql.Literal(high),
            building_check=sql.Identifier(f"{name}_building"),
            first=sql.Literal(first),
            beyond=sql.Literal(beyond),
        )
    )
    _own_like_parent(conn, table, target)
    return target


def _own_like_parent(
    conn: psycopg.Connection, table: PartitionedTable, target: sql.Identifier
) -> None:
    """Give `target` the parent's owner (a no-op when the creator is that owner already)."""
    row = conn.execute(
        "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = %s::regclass",
        (table.parent,),
    ).fetchone()
    if row is None:
        raise RuntimeError(f"{table.parent} has no owner: is the database migrated?")
    conn.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(target, sql.Identifier(str(row[0]))))


def copy_readings(
    conn: psycopg.Connection, target: sql.Identifier, batches: Iterable[pl.DataFrame]
) -> int:
    """Binary COPY of (ts, sensor_id, value) frames into a readings staging table; the rows."""
    statement = sql.SQL("COPY {} (ts, sensor_id, value) FROM STDIN (FORMAT BINARY)")
    with conn.cursor() as cursor:
        with cursor.copy(statement.format(target)) as copy:
            for chunk in pgcopy.copy_stream(iter(batches)):
                copy.write(chunk)
        return cursor.rowcount


def index_readings(
    conn: psycopg.Connection, month: Month, token: str, building: int = BUILDING_ID
) -> None:
    """The readings staging table's indexes (those of the parent, so ATTACH adopts them)."""
    name = READINGS.staging_name(month, token, building)
    conn.execute(
        sql.SQL(query("index_readings")).format(
            table=READINGS.identifier(month, token, building),
            sensor_ts=sql.Identifier(f"{name}_sensor_ts"),
            ts=sql.Identifier(f"{name}_ts"),
        )
    )


def aggregate(
    conn: psycopg.Connection, month: Month, token: str, building: int = BUILDING_ID
) -> None:
    """Fill the hourly and daily staging tables from the readings staging table, in one scan of
    it; leaves the temporary table `hourly_fingerprints` (per sensor and hour: count, sum, hash)
    for the rest of the transaction."""
    _require_transaction(conn, "aggregate")
    hourly = HOURLY.identifier(month, token, building)
    conn.execute(
        sql.SQL(query("create_hourly_fingerprints")).format(
            readings=READINGS.identifier(month, token, building)
        )
    )
    conn.execute(
        sql.SQL(query("insert_hourly_stats")).format(
            target=hourly,
            key=sql.Identifier(f"{HOURLY.staging_name(month, token, building)}_key"),
        )
    )
    conn.execute(
        sql.SQL(query("insert_daily_stats")).format(
            target=DAILY.identifier(month, token, building),
            hourly=hourly,
            key=sql.Identifier(f"{DAILY.staging_name(month, token, building)}_key"),
        )
    )


def _is_partition_of(conn: psycopg.Connection, child: str, parent: str) -> bool:
    found = conn.execute(query("select_is_partition_of"), {"child": child, "parent": parent})
    return found.fetchone() is not None


def attached(
    conn: psycopg.Connection, table: PartitionedTable, month: Month, building: int = BUILDING_ID
) -> bool:
    """Whether the building-month's partition of `table` is attached."""
    leaf = f"{SCHEMA}.{table.leaf_name(month, building)}"
    return _is_partition_of(conn, leaf, f"{SCHEMA}.{table.name(month)}")


def month_attached(conn: psycopg.Connection, table: PartitionedTable, month: Month) -> bool:
    """Whether the month's partition of `table` (every building's) is attached."""
    return _is_partition_of(conn, f"{SCHEMA}.{table.name(month)}", f"public.{table.parent}")


def size(
    conn: psycopg.Connection, table: PartitionedTable, month: Month, building: int | None = None
) -> int:
    """Bytes on disk, with indexes and TOAST, of the month's partition of `table`: every
    building's leaf, or `building`'s only; 0 if none."""
    name = table.name(month) if building is None else table.leaf_name(month, building)
    row = conn.execute(
        query("select_month_partition_size"), {"month": f"{SCHEMA}.{name}"}
    ).fetchone()
    return int(row[0]) if row else 0


def ensure_month(conn: psycopg.Connection, table: PartitionedTable, month: Month) -> None:
    """Create and attach the month's partition of `table`, partitioned by building, if it is not
    there. It is empty, so ATTACH scans nothing. Call in a transaction."""
    _require_transaction(conn, "ensure_month")
    _lock_parents(conn)  # then no other building's load can make it meanwhile
    if month_attached(conn, table, month):
        return
    low, high = table.bounds(month)
    current = table.month_identifier(month)
    conn.execute(
        sql.SQL(query("create_month_partition")).format(
            table=current, parent=sql.Identifier(table.parent)
        )
    )
    _own_like_parent(conn, table, current)
    conn.execute(
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
            sql.Identifier(table.parent), current, sql.Literal(low), sql.Literal(high)
        )
    )


def _lock_parents(conn: psycopg.Connection) -> None:
    """Queue with every other change of the parents' months, all four parents in one order
    (SHARE UPDATE EXCLUSIVE conflicts with itself, not with readers): two buildings' loads of
    one month then never both create the month's table, nor does one drop it while the other
    attaches to it, and swaps that touch the parents in different orders cannot deadlock."""
    conn.execute(
        sql.SQL("LOCK TABLE {} IN SHARE UPDATE EXCLUSIVE MODE").format(
            sql.SQL(", ").join(sql.Identifier(table.parent) for table in ALL_TABLES)
        )
    )


def _other_leaves(
    conn: psycopg.Connection, table: PartitionedTable, month: Month, building: int
) -> int:
    """How many leaves of the month's partition belong to buildings other than `building`."""
    row = conn.execute(
        query("count_other_leaves"),
        {
            "month": f"{SCHEMA}.{table.name(month)}",
            "leaf": f"{SCHEMA}.{table.leaf_name(month, building)}",
        },
    ).fetchone()
    return int(row[0]) if row else 0


def _detach_and_drop(
    conn: psycopg.Connection, parent: sql.Identifier, child: sql.Identifier
) -> None:
    conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(parent, child))
    conn.execute(sql.SQL("DROP TABLE {}").format(child))


def detach_and_drop(
    conn: psycopg.Connection, table: PartitionedTable, month: Month, building: int = BUILDING_ID
) -> bool:
    """Detach and drop the building-month's partition of `table`; with it the month's partition
    when no other building has one there. False if neither was there. Call in a transaction.

    Locks go parent first, as readers take them: the month is detached from the parent (which
    locks the parent, then the month) rather than emptied leaf by leaf and then detached, which
    would wait for the parent while holding the month, and deadlock with a reader doing the
    opposite."""
    _require_transaction(conn, "detach_and_drop")
    _lock_parents(conn)
    if not month_attached(conn, table, month):
        return False
    if not _other_leaves(conn, table, month, building):
        _detach_and_drop(conn, sql.Identifier(table.parent), table.month_identifier(month))
        return True
    if not attached(conn, table, month, building):
        return False
    _detach_and_drop(
        conn, table.month_identifier(month), table.identifier(month, building=building)
    )
    return True


def attach(
    conn: psycopg.Connection,
    table: PartitionedTable,
    month: Month,
    token: str,
    replace: bool = True,
    building: int = BUILDING_ID,
) -> None:
    """Make the staging table `token` the building-month's partition of `table`, detaching and
    dropping the one attached now. Call in a transaction: readers see the old building-month
    until it commits, the new one after. With `replace=False` an existing partition is never
    touched: the rename fails (DuplicateTable) and the caller's transaction with it."""
    _require_transaction(conn, "attach")
    _lock_parents(conn)
    if replace and attached(conn, table, month, building):
        _detach_and_drop(
            conn, table.month_identifier(month), table.identifier(month, building=building)
        )
    ensure_month(conn, table, month)
    conn.execute(
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(
            table.identifier(month, token, building),
            sql.Identifier(table.leaf_name(month, building)),
        )
    )
    first, beyond = building_bounds(building)
    conn.execute(
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
            table.month_identifier(month),
            table.identifier(month, building=building),
            sql.Literal(first),
            sql.Literal(beyond),
        )
    )


def drop_debris(conn: psycopg.Connection, month: Month, building: int = BUILDING_ID) -> list[str]:
    """Drop the building-month's unattached tables (staging tables of runs that did not finish)
    of every parent; other building-months' tables stay. Returns the names dropped."""
    prefixes = [f"{table.leaf_name(month, building)}_" for table in ALL_TABLES]
    rows = conn.execute(query("select_month_debris"), {"prefixes": prefixes}).fetchall()
    for (name,) in rows:
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(SCHEMA, name)))
    return [name for (name,) in rows]
