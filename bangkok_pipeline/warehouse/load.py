"""Load one month into PostgreSQL: build fresh tables, verify them, swap them in atomically.

Readers never see a partial month: readings are COPYed into an unattached staging table
(`partitions.py`) created with the month's range CHECK in the same transaction, indexed and
aggregated. (COPY into a table created in its own transaction skips WAL only at
`wal_level=minimal`, the embedded server's setting; hosted servers run `replica` and write WAL for
it as for any table.) The database's per-sensor fingerprints are checked against the validated
frame's; only then one short transaction detaches and drops the old month and attaches the new
one, for the readings and both aggregate tables, and replaces the month's rows of the side
tables (quarantine, coverage, gaps, and each sensor's last reading for the query API).
A month the compression policy calls cold (or one compressed now) goes straight into the
compressed tier: its day rows are built in numpy (`transform.days`) and COPYed, with the daily
statistics from their summaries and no hourly partition (`compression.py`); the server's md5 of
every row's arrays proves it stores exactly the bytes sent, so the figures reconciled are those of
the day matrix. A crash before that transaction leaves the old month untouched and at most some
unattached tables, which the next load of the month drops. The month lock (`month_lock`) keeps
two loads apart.
"""

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import polars as pl
import psycopg
from psycopg import sql

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.db.queries import query
from bangkok_pipeline.source.layout import BUILDING_ID
from bangkok_pipeline.transform.days import day_matrix
from bangkok_pipeline.transform.fingerprint import Figures, as_figures, mismatched_sensors
from bangkok_pipeline.transform.validation import QUARANTINE_SCHEMA
from bangkok_pipeline.warehouse import compression, partitions
from bangkok_pipeline.warehouse.month_lock import month_lock
from bangkok_pipeline.warehouse.partitions import DAILY, DAYS, HOURLY, READINGS, TABLES

log = logging.getLogger(__name__)
T = TypeVar("T")
_SWAP_ATTEMPTS = 5
QUARANTINE_COLUMNS = tuple(name for name in QUARANTINE_SCHEMA if name != "month")
COVERAGE_COLUMNS = (
    "sensor_id",
    "present_minutes",
    "expected_minutes",
    "gap_segments",
    "longest_gap_minutes",
)
GAP_COLUMNS = ("sensor_id", "gap_start", "gap_end", "minutes")


class ReconciliationError(RuntimeError):
    """The database does not hold exactly the validated readings; nothing was swapped in."""


class ShrinkError(RuntimeError):
    """The new load would remove more of the loaded month than allowed; nothing was swapped in."""


@dataclass(frozen=True)
class ShrinkGuard:
    """How much of a loaded month a reload may remove: no floor may lose more than `max_share`
    of its readings (a floor that disappears loses all of them), unless `allow`."""

    max_share: float = 0.1
    allow: bool = False


@dataclass
class MonthLoadResult:
    month: Month
    rows_loaded: int
    sensors: int
    partition_bytes: int  # of the building-month's readings partition, in the month's tier
    timings: dict[str, float] = field(default_factory=dict)
    compressed: bool = False


@dataclass
class MonthLoader:
    """Everything one building-month's load needs; `run()` does it under its lock."""

    conn: psycopg.Connection  # autocommit
    month: Month
    batches: Callable[[], Iterator[pl.DataFrame]]  # ts, sensor_id, value sorted by (sensor, ts)
    fingerprints: pl.DataFrame  # frame_fingerprints() of the same readings
    quarantine: pl.DataFrame  # columns QUARANTINE_COLUMNS
    coverage: pl.DataFrame  # coverage.coverage_summary() of the same readings
    gaps: pl.DataFrame  # coverage.gap_segments() of the same readings
    run_id: str
    source_fingerprints: dict[str, object]
    rows_read: int
    shrink: ShrinkGuard = field(default_factory=ShrinkGuard)
    keep_as_rows: int | None = None  # the compression policy (BANGKOK_COMPRESS_AFTER_MONTHS)
    compressed: bool = False  # decided under the lock: write the month compressed
    after_swap: Callable[[], None] = lambda: None  # called under the lock once swapped in
    on_wait: Callable[[str], None] | None = None  # told once when another holds the month lock
    building: int = BUILDING_ID  # whose sensors the readings are (their ids' block)
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    timings: dict[str, float] = field(default_factory=dict)
    _database_figures: Figures = field(default_factory=dict)
    _latest: list[tuple[int, datetime, float]] = field(default_factory=list)  # per sensor

    def run(self) -> MonthLoadResult:
        with month_lock(
            self.conn, self.month, on_wait=self.on_wait, building=self.building
        ) as lock:
            self.conn.execute(
                query("abandon_running_loads"), {"month": self.month, "building": self.building}
            )
            load_id = self._start_log()
            try:
                self.compressed = compression.is_cold(
                    self.conn, self.month, self.keep_as_rows, self.building
                )
                self._timed("cleanup", self.drop_debris)
                rows = self._timed("copy_index_aggregate", self._build)
                self._timed("reconcile", self._reconcile)
                self._timed("shrink_check", self._check_shrink)
                lock.ensure_held()
                self._timed("swap", lambda: self._swap(load_id, rows))
            except BaseException as error:
                self._fail(load_id, error)
                raise
            try:
                self.after_swap()
            except OSError as error:  # the month is in; only its file layers are not published
                log.warning(
                    "%s: loaded, but its layers were not published: %s", self.month.first_day, error
                )
            tier = DAYS if self.compressed else READINGS
            return MonthLoadResult(
                self.month,
                rows,
                self.fingerprints.height,
                partitions.size(self.conn, tier, self.month, self.building),
                dict(self.timings),
                self.compressed,
            )

    def _timed(self, name: str, step: Callable[[], T]) -> T:
        started = time.perf_counter()
        result = step()
        self.timings[name] = round(time.perf_counter() - started, 3)
        return result

    def drop_debris(self) -> list[str]:
        """Drop this building-month's unattached tables left by loads that did not finish."""
        return partitions.drop_debris(self.conn, self.month, self.building)

    def _start_log(self) -> int:
        row = self.conn.execute(
            query("insert_load_log"),
            {
                "month": self.month,
                "building": self.building,
                "run_id": self.run_id,
                "fingerprints": json.dumps(self.source_fingerprints),
                "rows_read": self.rows_read,
            },
        ).fetchone()
        assert row is not None
        return int(row[0])

    def _build(self) -> int:
        """Create, fill, index and aggregate the new month in one transaction."""
        if self.compressed:
            return self._build_compressed()
        readings = READINGS.identifier(self.month, self.token, self.building)
        with self.conn.transaction():
            for table in TABLES:
                partitions.create_staging(self.conn, table, self.month, self.token, self.building)
            rows = partitions.copy_readings(self.conn, readings, self.batches())
            partitions.index_readings(self.conn, self.month, self.token, self.building)
            partitions.aggregate(self.conn, self.month, self.token, self.building)
            found = self.conn.execute(query("select_hourly_fingerprints")).fetchall()
            self._database_figures = {s: (int(n), t, int(h)) for s, n, t, h in found}
            # Statistics first: the latest-readings query plans badly on a table without them.
            self.conn.execute(sql.SQL("ANALYZE {}").format(readings))
            self._latest = self.conn.execute(
                sql.SQL(query("select_month_latest_readings")).format(
                    readings=readings,
                    hourly=HOURLY.identifier(self.month, self.token, self.building),
                )
            ).fetchall()
        return rows

    def _build_compressed(self) -> int:
        """The month straight into the compressed tier: day rows built in numpy and COPYed,
        never a row per reading. The database's figures are the day matrix's, once the server
        shows it stores exactly the bytes sent (the md5 of every row's arrays)."""
        matrix = day_matrix(self.batches(), self.fingerprints.height * self.month.minutes // 1440)
        with self.conn.transaction():
            days = partitions.create_staging(self.conn, DAYS, self.month, self.token, self.building)
            partitions.create_staging(self.conn, DAILY, self.month, self.token, self.building)
            differ = compression.copy_days(self.conn, days, matrix)
            if differ:
                raise ReconciliationError(
                    f"month {self.month}: the database stores other values than were sent for "
                    f"{len(differ)} sensor-day(s), e.g. {differ[:5]}; nothing was swapped in"
                )
            compression.aggregate_days(self.conn, self.month, self.token, self.building)
            compression.analyze_days(self.conn, days)
        self._database_figures = as_figures(matrix.fingerprints())
        self._latest = matrix.latest()
        return matrix.readings

    def _reconcile(self) -> None:
        """Record frame vs database figures per sensor; refuse the swap on any difference."""
        database = self._database_figures
        frame = as_figures(self.fingerprints)
        sensors = sorted(frame.keys() | database.keys())
        missing = (0, 0.0, 0)
        with self.conn.transaction(), self.conn.cursor() as cursor:
            cursor.executemany(
                query("upsert_reconciliation"),
                [
                    {
                        "month": self.month,
                        "sensor_id": sensor,
                        "run_id": self.run_id,
                        "frame_count": frame.get(sensor, missing)[0],
                        "frame_sum": frame.get(sensor, missing)[1],
                        "frame_hash": frame.get(sensor, missing)[2],
                        "db_count": database.get(sensor, missing)[0],
                        "db_sum": database.get(sensor, missing)[1],
                        "db_hash": database.get(sensor, missing)[2],
                    }
                    for sensor in sensors
                ],
            )
            cursor.execute(
                query("delete_stale_reconciliation"),
                {"month": self.month, "sensor_ids": sensors, **self._ids()},
            )
        mismatched = mismatched_sensors(frame, database)
        if mismatched:
            raise ReconciliationError(
                f"month {self.month}: the database differs from the validated frame for "
                f"sensor(s) {mismatched[:10]}; see table reconciliation"
            )

    def _check_shrink(self) -> None:
        """Refuse a build that would take more of a floor's loaded readings than allowed."""
        if self.shrink.allow:
            return
        low, high = DAILY.bounds(self.month)
        rows = self.conn.execute(
            sql.SQL(query("select_floor_shrink")).format(
                new_daily=DAILY.identifier(self.month, self.token, self.building)
            ),
            {"low": low, "high": high, **self._ids()},
        ).fetchall()
        losses = [
            f"floor {floor} from {loaded:,} to {new:,} readings ({new / loaded - 1:+.1%})"
            for floor, loaded, new in rows
            if loaded and (loaded - new) / loaded > self.shrink.max_share
        ]
        if losses:
            raise ShrinkError(
                f"{self.month}: this load would shrink the loaded month: "
                f"{'; '.join(losses)} (a floor may lose at most {self.shrink.max_share:.0%}, "
                "BANGKOK_MAX_SHRINK_SHARE); nothing was changed. If that is intended, load "
                "again with --allow-shrink (or run config allow_shrink: true)"
            )

    def _swap(self, load_id: int, rows: int) -> None:
        for attempt in range(1, _SWAP_ATTEMPTS + 1):
            try:
                with self.conn.transaction():
                    self.conn.execute("SET LOCAL lock_timeout = '5s'")
                    if self.compressed:  # its hours are in the day rows' hourly summaries
                        partitions.detach_and_drop(self.conn, READINGS, self.month, self.building)
                        partitions.detach_and_drop(self.conn, HOURLY, self.month, self.building)
                    for table in (DAYS, DAILY) if self.compressed else TABLES:
                        partitions.attach(
                            self.conn, table, self.month, self.token, building=self.building
                        )
                    self._replace_month_rows(
                        "quarantine",
                        self.quarantine.with_columns(
                            run_id=pl.lit(self.run_id), building_id=pl.lit(self.building)
                        ),
                        ("building_id", "run_id", *QUARANTINE_COLUMNS),
                    )
                    self._replace_month_rows("sensor_coverage", self.coverage, COVERAGE_COLUMNS)
                    self._replace_month_rows("reading_gaps", self.gaps, GAP_COLUMNS)
                    self._replace_latest_readings()
                    self._finish_log(load_id, "succeeded", rows, None)
                return
            except psycopg.errors.LockNotAvailable:
                if attempt == _SWAP_ATTEMPTS:
                    raise
                time.sleep(attempt)

    def _ids(self) -> dict[str, int]:
        """The building's sensor ids [first, beyond), as query parameters."""
        first, beyond = partitions.building_bounds(self.building)
        return {"first": first, "beyond": beyond}

    def _replace_month_rows(self, table: str, rows: pl.DataFrame, columns: tuple[str, ...]) -> None:
        """Replace the building-month's rows of a per-month side table (inside the swap
        transaction): those of its sensors, or with its building_id where there is no sensor."""
        target = sql.Identifier(table)
        mine = (
            sql.SQL("building_id = %(building)s")
            if "building_id" in columns
            else sql.SQL("sensor_id >= %(first)s AND sensor_id < %(beyond)s")
        )
        self.conn.execute(
            sql.SQL("DELETE FROM {} WHERE month = %(month)s AND {}").format(target, mine),
            {"month": self.month, "building": self.building, **self._ids()},
        )
        if not rows.height:
            return
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            target, sql.SQL(", ").join(sql.Identifier(name) for name in ("month", *columns))
        )
        with self.conn.cursor().copy(statement) as copy:
            for row in rows.select(columns).iter_rows():
                copy.write_row((self.month, *row))

    def _replace_latest_readings(self) -> None:
        """Each sensor's last reading of the month, for the query API (inside the swap)."""
        self.conn.execute(
            query("delete_month_latest_readings"), {"month": self.month, **self._ids()}
        )
        sensor_ids, ts, values = zip(*self._latest, strict=True) if self._latest else ((), (), ())
        self.conn.execute(
            query("insert_month_latest_readings"),
            {
                "month": self.month,
                "sensor_ids": list(sensor_ids),
                "ts": list(ts),
                "values": list(values),
            },
        )

    def _finish_log(self, load_id: int, status: str, rows: int | None, error: str | None) -> None:
        self.conn.execute(
            query("finish_load_log"),
            {
                "load_id": load_id,
                "status": status,
                "rows_loaded": rows,
                "rows_quarantined": self.quarantine.height,
                "checksum": str(int(self.fingerprints["hash"].sum())) if rows is not None else None,
                "timings": json.dumps(self.timings),
                "error": error,
            },
        )

    def _fail(self, load_id: int, error: BaseException) -> None:
        """Record the failure and drop what this load built; the old month stays as it was."""
        if self.conn.closed or self.conn.broken:
            return
        try:
            self.drop_debris()
            self._finish_log(load_id, "failed", None, f"{type(error).__name__}: {error}"[:2000])
        except psycopg.Error:
            pass
