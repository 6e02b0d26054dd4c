"""A month partition's life, for the load, premake, archive and restore: one place for it.

The three partitioned parents (`sensor_readings_rows`, `hourly_sensor_stats`, `daily_sensor_stats`)
hold one partition per Bangkok calendar month in schema `partitions`, named
`<parent>_yYYYYmMM`. A month is built in staging tables `<partition>_<token>`: created like the
parent with the month's range CHECK (so ATTACH needs no validation scan and takes only a SHARE
UPDATE EXCLUSIVE lock on the parent) and owned like the parent from the start (ATTACH, DETACH and
DROP need ownership, which no grant gives: with access control migrated, `bangkok_loader` owns
every partition, so whichever login builds a month, any loader can replace or drop it later, and
any loader can drop a staging table a crashed run left behind). Attaching replaces the month's
current partition, if any, in the caller's transaction, so readers see the old month or the new
one. Callers hold the month's lock (`month_lock`) around all of it.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

import polars as pl
import psycopg
from psycopg import pq, sql

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.db.queries import query
from bangkok_pipeline.warehouse import pgcopy

SCHEMA = "partitions"


@dataclass(frozen=True)
class PartitionedTable:
    """One partitioned parent, the column it is ranged on, and how a month bounds it (daily
    tables by dates, the others by Bangkok-midnight instants)."""

    parent: str
    column: str
    daily: bool = False

    def name(self, month: Month) -> str:
        """The month's partition: `sensor_readings_y2018m07`."""
        return f"{self.parent}_{month.suffix}"

    def staging_name(self, month: Month, token: str) -> str:
        """A staging table of the month: `sensor_readings_y2018m07_<token>`."""
        return f"{self.name(month)}_{token}"

    def identifier(self, month: Month, token: str | None = None) -> sql.Identifier:
        """`partitions.<name>` of the month's partition, or of a staging table with `token`."""
        name = self.name(month) if token is None else self.staging_name(month, token)
        return sql.Identifier(SCHEMA, name)

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
    r"_y(?P<year>\d{4})m(?P<month>\d{2})(?:_(?P<suffix>\w+))?$"
)


def parse_partition_name(name: str) -> tuple[str, Month, str | None] | None:
    """`sensor_readings_y2018m07[_token]` -> (parent, month, token); None for other names."""
    match = _NAME.match(name)
    if not match or not 1 <= int(match["month"]) <= 12:
        return None
    return match["parent"], Month(int(match["year"]), int(match["month"])), match["suffix"]


def _require_transaction(conn: psycopg.Connection, what: str) -> None:
    if conn.info.transaction_status != pq.TransactionStatus.INTRANS:
        raise RuntimeError(f"{what} must run inside a transaction (it is one step of several)")


def create_staging(
    conn: psycopg.Connection, table: PartitionedTable, month: Month, token: str
) -> sql.Identifier:
    """Create the month's staging table `<partition>_<token>`: like the parent, with the month's
    range CHECK, owned by the parent's owner. Call in a transaction; returns its identifier."""
    _require_transaction(conn, "create_staging")
    name = table.staging_name(month, token)
    target = table.identifier(month, token)
    low, high = table.bounds(month)
    conn.execute(
        sql.SQL(query("create_staging_table")).format(
            table=target,
            parent=sql.Identifier(table.parent),
            check=sql.Identifier(f"{name}_month"),
            column=sql.Identifier(table.column),
            low=sql.Literal(low),
            high=sql.Literal(high),
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


def index_readings(conn: psycopg.Connection, month: Month, token: str) -> None:
    """The readings staging table's indexes (those of the parent, so ATTACH adopts them)."""
    name = READINGS.staging_name(month, token)
    conn.execute(
        sql.SQL(query("index_readings")).format(
            table=READINGS.identifier(month, token),
            sensor_ts=sql.Identifier(f"{name}_sensor_ts"),
            ts=sql.Identifier(f"{name}_ts"),
        )
    )


def aggregate(conn: psycopg.Connection, month: Month, token: str) -> None:
    """Fill the hourly and daily staging tables from the readings staging table, in one scan of
    it; leaves the temporary table `hourly_fingerprints` (per sensor and hour: count, sum, hash)
    for the rest of the transaction."""
    _require_transaction(conn, "aggregate")
    hourly = HOURLY.identifier(month, token)
    conn.execute(
        sql.SQL(query("create_hourly_fingerprints")).format(
            readings=READINGS.identifier(month, token)
        )
    )
    conn.execute(
        sql.SQL(query("insert_hourly_stats")).format(
            target=hourly, key=sql.Identifier(f"{HOURLY.staging_name(month, token)}_key")
        )
    )
    conn.execute(
        sql.SQL(query("insert_daily_stats")).format(
            target=DAILY.identifier(month, token),
            hourly=hourly,
            key=sql.Identifier(f"{DAILY.staging_name(month, token)}_key"),
        )
    )


def attached(conn: psycopg.Connection, table: PartitionedTable, month: Month) -> bool:
    """Whether the month's partition of `table` is attached."""
    row = conn.execute(
        "SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(%s) AND inhparent = %s::regclass",
        (f"{SCHEMA}.{table.name(month)}", table.parent),
    ).fetchone()
    return row is not None


def detach_and_drop(conn: psycopg.Connection, table: PartitionedTable, month: Month) -> bool:
    """Detach and drop the month's partition of `table`; False if none is attached. Call in a
    transaction."""
    _require_transaction(conn, "detach_and_drop")
    if not attached(conn, table, month):
        return False
    current = table.identifier(month)
    conn.execute(
        sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(sql.Identifier(table.parent), current)
    )
    conn.execute(sql.SQL("DROP TABLE {}").format(current))
    return True


def attach(
    conn: psycopg.Connection,
    table: PartitionedTable,
    month: Month,
    token: str,
    replace: bool = True,
) -> None:
    """Make the staging table `token` the month's partition of `table`, detaching and dropping
    the one attached now (loaded or premade). Call in a transaction: readers see the old month
    until it commits, the new one after. With `replace=False` an existing partition is never
    touched: the rename fails (DuplicateTable) and the caller's transaction with it."""
    _require_transaction(conn, "attach")
    if replace:
        detach_and_drop(conn, table, month)
    conn.execute(
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(
            table.identifier(month, token), sql.Identifier(table.name(month))
        )
    )
    low, high = table.bounds(month)
    conn.execute(
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
            sql.Identifier(table.parent),
            table.identifier(month),
            sql.Literal(low),
            sql.Literal(high),
        )
    )


def drop_debris(conn: psycopg.Connection, month: Month) -> list[str]:
    """Drop the month's unattached tables (staging tables of runs that did not finish) of every
    parent; other months' tables stay. Returns the names dropped."""
    prefixes = [f"{table.name(month)}_" for table in ALL_TABLES]
    rows = conn.execute(query("select_month_debris"), {"prefixes": prefixes}).fetchall()
    for (name,) in rows:
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(SCHEMA, name)))
    return [name for (name,) in rows]
