"""Compressed months: a month's readings as one row per sensor and Bangkok day (migration 0009).

A month is in one of two tiers: rows (`sensor_readings_rows`, one row a reading, ~44 bytes) or
compressed (`sensor_readings_days`: the day's 1,440 minute slots in a `real[]` that TOAST
compresses, with count, min, max and sum beside it, and the same four for each of its 24 hours,
which stand in for the month's hourly partition). The view `sensor_readings` shows both tiers,
`hourly_aggregates` both kinds of hours, so readers see the same whatever the tier.

Compress and decompress are swaps like a load: under the month's lock, in one transaction, the
other tier's partition is built from the month's partition, checked reading for reading (per
sensor: count, sum and a hash of minute and exact float4 bits), the old partition dropped and the
new one attached. Readers see the month in one tier or the other, never missing or doubled; a
crash rolls the transaction back and leaves the old tier in place. The policy
(`BANGKOK_COMPRESS_AFTER_MONTHS`) names the months that should be compressed; loads of those
months write them compressed (see `load.py`), and a reload keeps a month's tier.
"""

import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg
from psycopg import sql

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.core.settings import format_size
from bangkok_pipeline.db.queries import query
from bangkok_pipeline.source.layout import BUILDING_ID
from bangkok_pipeline.transform.days import DayMatrix
from bangkok_pipeline.transform.fingerprint import database_fingerprints, mismatched_sensors
from bangkok_pipeline.warehouse import maintenance, partitions, pgcopy
from bangkok_pipeline.warehouse.month_lock import month_lock
from bangkok_pipeline.warehouse.partitions import DAILY, DAYS, HOURLY, READINGS, PartitionedTable

# Bytes a reading takes as rows (tuple, BRIN indexes), measured on a loaded month: 390 MB for
# 8.8 M readings. Used to tell whether a decompressed month fits before starting.
ROW_BYTES_PER_READING = 45
SWAP_ATTEMPTS = 5


class CompressionError(RuntimeError):
    """A compress or decompress that was refused or failed; nothing was changed."""


@dataclass(frozen=True)
class TierChange:
    """One month moved to `tier`: its readings and the bytes of its readings partition before
    and after."""

    month: Month
    tier: str
    readings: int
    bytes_before: int
    bytes_after: int
    seconds: float

    @property
    def ratio(self) -> float:
        """Bytes before over bytes after (22.0: the new partition is 22 times smaller)."""
        return self.bytes_before / self.bytes_after if self.bytes_after else float("inf")

    def line(self) -> str:
        smaller = self.bytes_after <= self.bytes_before
        factor = self.ratio if smaller else 1 / self.ratio
        return (
            f"{self.month}: {self.tier}, {self.readings:,} readings, "
            f"{format_size(self.bytes_before, 'MB')} -> {format_size(self.bytes_after, 'MB')} "
            f"({factor:.1f}x {'smaller' if smaller else 'larger'}) in {self.seconds:.1f} s"
        )


def tiers(conn: psycopg.Connection, building: int = BUILDING_ID) -> dict[Month, str]:
    """Every month with readings of `building` in the database -> "rows" or "compressed". An
    empty rows partition of a month never loaded (premade before 0011) is not one."""
    found = maintenance.inventory(conn)
    loaded = set(maintenance.loaded_months(conn))
    rows = found.building_months(READINGS.parent, building)
    result = {m: "rows" for m in rows if m in loaded}
    result |= dict.fromkeys(found.building_months(DAYS.parent, building), "compressed")
    return result


def cold_months(
    conn: psycopg.Connection, keep_as_rows: int | None, building: int = BUILDING_ID
) -> list[Month]:
    """The building's months the policy compresses: all its months with readings but the newest
    `keep_as_rows` (counted from its newest month with readings, whatever its tier); none without
    a policy."""
    if keep_as_rows is None:
        return []
    months = sorted(tiers(conn, building))
    return months[: max(0, len(months) - keep_as_rows)]


def is_cold(
    conn: psycopg.Connection, month: Month, keep_as_rows: int | None, building: int = BUILDING_ID
) -> bool:
    """Whether a load of the building's `month` writes it compressed: it is compressed now (a
    reload keeps its tier), or the policy compresses it (`keep_as_rows` of the building's months
    with readings are newer)."""
    current = tiers(conn, building)
    if current.get(month) == "compressed":
        return True
    if keep_as_rows is None:
        return False
    return len([m for m in current if m > month]) >= keep_as_rows


def check(
    conn: psycopg.Connection, months: list[Month], to: str, building: int = BUILDING_ID
) -> None:
    """Refuse, before anything changes, the building's months that cannot move to tier `to`: not
    loaded (a gap in the range), archived. Months already in `to` are fine (nothing to do)."""
    current = tiers(conn, building)
    archived = maintenance.archived_months(conn)
    problems = []
    for month in months:
        if month in archived:
            problems.append(
                f"{month} is archived (restore it first: bangkok-pipeline archive "
                f"restore --month {month})"
            )
        elif month not in current:
            problems.append(f"{month} is not loaded")
    if problems:
        raise CompressionError(f"cannot {_VERB[to]}: {'; '.join(problems)}; nothing was changed")


_VERB = {"compressed": "compress", "rows": "decompress"}


def compress(
    conn: psycopg.Connection, months: list[Month], building: int = BUILDING_ID
) -> list[TierChange]:
    """Compress each of the building's `months` that is rows now (all checked first)."""
    check(conn, months, "compressed", building)
    return [
        change for m in months if (change := _move(conn, m, "compressed", building)) is not None
    ]


def decompress(
    conn: psycopg.Connection,
    months: list[Month],
    budget_bytes: int | None = None,
    building: int = BUILDING_ID,
) -> list[TierChange]:
    """Decompress each month of `months` that is compressed now (all checked first), refusing
    before starting if the readings as rows would not fit `budget_bytes` or the server's disk."""
    check(conn, months, "rows", building)
    current = tiers(conn, building)
    compressed = [m for m in months if current.get(m) == "compressed"]
    _check_room(conn, compressed, budget_bytes, building)
    return [change for m in compressed if (change := _move(conn, m, "rows", building)) is not None]


def build_compressed(
    conn: psycopg.Connection,
    month: Month,
    token: str,
    source: sql.Composable,
    building: int = BUILDING_ID,
) -> sql.Identifier:
    """Create the building-month's compressed staging table `token` and fill it from the (ts,
    sensor_id, value) readings of `source`, checked reading for reading; in the caller's
    transaction."""
    target = partitions.create_staging(conn, DAYS, month, token, building)
    conn.execute(sql.SQL(query("insert_compressed_days")).format(target=target, source=source))
    _same_readings(conn, month, source, decompressed(target))
    return target


def copy_days(
    conn: psycopg.Connection, target: sql.Identifier, matrix: DayMatrix
) -> list[tuple[int, date]]:
    """Binary COPY of the matrix's day rows into a compressed staging table; returns the
    (sensor, day) rows whose stored arrays differ from those sent (none, unless something between
    here and the disk changed them)."""
    sent: list[str] = []
    with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(target)) as copy:
        for chunk in pgcopy.copy_days_stream(matrix, sent):
            copy.write(chunk)
    expected = {
        (int(matrix.sensor_ids[row]), matrix.day(row)): digest for row, digest in enumerate(sent)
    }
    stored = conn.execute(sql.SQL(query("select_day_digests")).format(days=target)).fetchall()
    found = {(int(sensor), day): digest for sensor, day, digest in stored}
    keys = expected.keys() | found.keys()
    return sorted(key for key in keys if expected.get(key) != found.get(key))


def analyze_days(conn: psycopg.Connection, table: sql.Identifier) -> None:
    """Planner statistics of a table of compressed days: its keys only (statistics of the
    arrays would cost decompressing a sample of them, and no plan uses them)."""
    conn.execute(sql.SQL("ANALYZE {} (sensor_id, day)").format(table))


def aggregate_days(
    conn: psycopg.Connection, month: Month, token: str, building: int = BUILDING_ID
) -> None:
    """Fill the building-month's daily staging table `token` from its compressed staging table."""
    conn.execute(
        sql.SQL(query("insert_daily_stats_from_days")).format(
            target=DAILY.identifier(month, token, building),
            days=DAYS.identifier(month, token, building),
            key=sql.Identifier(f"{DAILY.staging_name(month, token, building)}_key"),
        )
    )


def decompressed_subquery(table: sql.Composable) -> sql.Composed:
    """`(SELECT ts, sensor_id, value ...)` of a table of compressed days, to alias."""
    inner = sql.SQL(query("select_decompressed_days")).format(source=table)
    return sql.SQL("({})").format(inner)


def decompressed(table: sql.Composable) -> sql.Composed:
    """The (ts, sensor_id, value) readings of a table of compressed days, as `(...) AS days`."""
    return sql.SQL("{} AS days").format(decompressed_subquery(table))


def month_readings(
    conn: psycopg.Connection, month: Month, building: int = BUILDING_ID
) -> sql.Composable | None:
    """The building-month's attached readings to select from, whatever the tier: its rows
    partition, or its compressed days as a subquery (to alias); None when neither is attached."""
    if partitions.attached(conn, READINGS, month, building):
        return READINGS.identifier(month, building=building)
    if partitions.attached(conn, DAYS, month, building):
        return decompressed_subquery(DAYS.identifier(month, building=building))
    return None


def _same_readings(
    conn: psycopg.Connection, month: Month, before: sql.Composable, after: sql.Composable
) -> None:
    old = database_fingerprints(conn, before)
    new = database_fingerprints(conn, after)
    mismatched = mismatched_sensors(old, new)
    if mismatched:
        raise CompressionError(
            f"{month}: the new tier differs from the old one for sensor(s) {mismatched[:10]}; "
            "nothing was changed"
        )


def _move(conn: psycopg.Connection, month: Month, to: str, building: int) -> TierChange | None:
    """Move one building-month to tier `to` under its lock; None if it is there already. A
    compressed month has no hourly partition (its day rows carry hourly summaries), so
    decompressing builds one, with the daily statistics, from the new rows."""
    started = time.perf_counter()
    drop: tuple[PartitionedTable, ...]
    attach: tuple[PartitionedTable, ...]
    with month_lock(conn, month, building=building):
        if tiers(conn, building).get(month) == to:
            return None
        token = uuid.uuid4().hex[:8]
        with conn.transaction():
            if to == "compressed":
                current = READINGS.identifier(month, building=building)
                before = _bytes(conn, current)
                staging = build_compressed(conn, month, token, current, building)
                readings = _compressed_count(conn, staging)
                analyze_days(conn, staging)
                drop, attach = (READINGS, HOURLY), (DAYS,)
            else:
                current = DAYS.identifier(month, building=building)
                before = _bytes(conn, current)
                for table in (READINGS, HOURLY, DAILY):
                    partitions.create_staging(conn, table, month, token, building)
                staging = READINGS.identifier(month, token, building)
                conn.execute(
                    sql.SQL(query("insert_decompressed_rows")).format(
                        target=staging, source=decompressed(current)
                    )
                )
                partitions.index_readings(conn, month, token, building)
                partitions.aggregate(conn, month, token, building)
                _same_readings(conn, month, decompressed(current), staging)
                readings = _count(conn, staging)
                conn.execute(sql.SQL("ANALYZE {}").format(staging))
                drop, attach = (DAYS,), (READINGS, HOURLY, DAILY)
            _swap(conn, drop, attach, month, token, building)
            tier = DAYS if to == "compressed" else READINGS
            after = _bytes(conn, tier.identifier(month, building=building))
    return TierChange(month, to, readings, before, after, time.perf_counter() - started)


def _swap(
    conn: psycopg.Connection,
    drop: tuple[PartitionedTable, ...],
    attach: tuple[PartitionedTable, ...],
    month: Month,
    token: str,
    building: int,
) -> None:
    """Drop the building-month's partitions of `drop` and attach its staging tables of `attach`
    (each replacing the building-month's partition). DETACH waits for readers of the month;
    while it waits, new readers would queue behind it, so it waits at most 5 s at a time (in a
    savepoint, keeping the filled tables) and tries again, as a load's swap does."""
    for attempt in range(1, SWAP_ATTEMPTS + 1):
        try:
            with conn.transaction():
                conn.execute("SET LOCAL lock_timeout = '5s'")
                for table in drop:
                    partitions.detach_and_drop(conn, table, month, building)
                for table in attach:
                    partitions.attach(conn, table, month, token, building=building)
            return
        except psycopg.errors.LockNotAvailable:
            if attempt == SWAP_ATTEMPTS:
                raise CompressionError(
                    f"{month}: readers held the month for {SWAP_ATTEMPTS} attempts of 5 s; "
                    "nothing was changed, try again"
                ) from None
            time.sleep(attempt)


def _bytes(conn: psycopg.Connection, table: sql.Identifier) -> int:
    row = conn.execute(
        "SELECT pg_total_relation_size(%s::regclass)", (table.as_string(conn),)
    ).fetchone()
    return int(row[0]) if row else 0


def _count(conn: psycopg.Connection, table: sql.Composable) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
    return int(row[0]) if row else 0


def _compressed_count(conn: psycopg.Connection, table: sql.Composable) -> int:
    """The readings of a table of compressed days, from its per-day counts (no unnesting)."""
    row = conn.execute(sql.SQL("SELECT coalesce(sum(n), 0) FROM {}").format(table)).fetchone()
    return int(row[0]) if row else 0


def _check_room(
    conn: psycopg.Connection, months: list[Month], budget_bytes: int | None, building: int
) -> None:
    """Refuse decompressing the building's months whose readings as rows would exceed the
    database budget or the free disk of the server's data directory (where this process can see
    it)."""
    if not months:
        return
    readings = sum(
        _compressed_count(conn, DAYS.identifier(month, building=building)) for month in months
    )
    needed = readings * ROW_BYTES_PER_READING
    row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    size = int(row[0]) if row else 0
    names = ", ".join(str(m) for m in months)
    if budget_bytes is not None and size + needed > budget_bytes:
        raise CompressionError(
            f"decompressing {names} needs about {format_size(needed, 'MB')} "
            f"({readings:,} readings as rows); the database is {format_size(size, 'MB')} of the "
            f"{format_size(budget_bytes, 'MB')} budget (BANGKOK_DB_BUDGET); nothing was changed"
        )
    free = _free_disk(conn)
    if free is not None and needed > free:
        raise CompressionError(
            f"decompressing {names} needs about {format_size(needed, 'MB')} "
            f"({readings:,} readings as rows); the server's disk has {format_size(free, 'MB')} "
            "free; nothing was changed"
        )


def _free_disk(conn: psycopg.Connection) -> int | None:
    """Free bytes on the server's data directory, when it is readable and on this machine."""
    try:
        with conn.transaction():
            row = conn.execute("SELECT current_setting('data_directory')").fetchone()
    except psycopg.errors.InsufficientPrivilege:
        return None
    directory = Path(str(row[0])) if row else None
    if directory is None or not directory.exists():
        return None
    return shutil.disk_usage(directory).free
