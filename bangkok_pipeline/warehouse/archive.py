"""Retention with an archive: old months' raw readings leave the database for Parquet, and come
back exactly.

Why: raw readings are ~95 % of the database and old months are rarely read; a month's Parquet
file (zstd) is a small fraction of its partition. Archiving a month, in this order, so that a crash
at any point loses nothing:

1. read the partition (under the month's lock, so no load changes it meanwhile) and write
   `sensor_readings_YYYY-MM.parquet` beside a temporary name, fsync it;
2. read the file back and compare its per-sensor count, sum and order-independent hash
   (`fingerprint.py`) with the partition's, computed by PostgreSQL;
3. rename the file into place and write `sensor_readings_YYYY-MM.manifest.json` (row count, sum,
   checksum, per-sensor figures, SHA-256 of the file);
4. only then, in one transaction: record the month in `archived_months`, detach and drop the
   partition (and, by the aggregate policy, its aggregate partitions).

A compressed month is read through its decompressed days and its days partition dropped; it comes
back as rows (the compression policy compresses it again).

A crash before step 4 commits leaves the month in the database (and maybe a file, which the next
archive run replaces). Restoring reads the manifest, checks the file's SHA-256, COPYs it into a
fresh table, compares the database's figures with the manifest's, rebuilds missing aggregates
with the load's own steps, and attaches everything in that same transaction (`partitions.py`).
"""

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from bangkok_pipeline.core.files import replacing_file
from bangkok_pipeline.core.months import Month
from bangkok_pipeline.core.settings import format_size
from bangkok_pipeline.db.queries import query
from bangkok_pipeline.source.layout import BUILDING_ID
from bangkok_pipeline.transform.fingerprint import (
    Figures,
    as_figures,
    database_fingerprints,
    frame_fingerprints,
    mismatched_sensors,
)
from bangkok_pipeline.transform.validation import VALID_READINGS_SCHEMA
from bangkok_pipeline.warehouse import compression, maintenance, partitions, pgcopy
from bangkok_pipeline.warehouse.month_lock import MonthBusy, MonthLock, month_lock
from bangkok_pipeline.warehouse.partitions import DAILY, DAYS, HOURLY, READINGS, TABLES

FORMAT = "bangkok_pipeline.readings-archive/1"
COMPRESSION_LEVEL = 9  # zstd: ~4 % smaller than the default 3 for ~0.2 s more a month
_ROW_GROUP = 1_048_576
_FREE_SPACE_SHARE = 0.25  # of the partition's size: an archive is ~4 % of it, leave headroom
_FREE_SPACE_MARGIN = 16 * 1024**2


class ArchiveError(RuntimeError):
    """An archive or restore that was refused or failed; the database is as it was."""


@dataclass(frozen=True)
class Manifest:
    format: str
    month: str
    file_name: str
    file_bytes: int
    file_sha256: str
    rows: int
    value_sum: float
    checksum: str  # the sum of the per-sensor hashes, an exact integer, as text
    sensors: dict[str, list[Any]]  # sensor_id -> [count, sum, hash]
    partition_bytes: int  # the month's readings table with its indexes, when archived
    archived_at: str
    building_id: int = BUILDING_ID  # manifests before buildings are CU-BEMS's

    def figures(self) -> Figures:
        return {int(s): (int(n), float(t), int(h)) for s, (n, t, h) in self.sensors.items()}

    @classmethod
    def read(cls, path: Path) -> "Manifest":
        try:
            raw = json.loads(path.read_text())
            if raw.get("format") != FORMAT:
                raise ArchiveError(f"{path} is not a readings archive manifest ({FORMAT})")
            return cls(**raw)
        except (ValueError, TypeError) as error:
            raise ArchiveError(f"{path} is not a readable archive manifest: {error}") from None


def paths(directory: Path, month: Month, building: int = BUILDING_ID) -> tuple[Path, Path]:
    """The building-month's Parquet file and manifest in the archive directory (buildings after
    the first add `-b<building>` to the month)."""
    stem = f"sensor_readings_{month}" + ("" if building == BUILDING_ID else f"-b{building}")
    return directory / f"{stem}.parquet", directory / f"{stem}.manifest.json"


@dataclass(frozen=True)
class ArchiveResult:
    month: str
    rows: int
    partition_bytes: int
    file_bytes: int
    file: Path
    aggregates_dropped: bool

    @property
    def saving(self) -> float:
        return 1 - self.file_bytes / self.partition_bytes if self.partition_bytes else 0.0

    def summary(self) -> str:
        aggregates = "; aggregates dropped too" if self.aggregates_dropped else ""
        partition, file = (
            format_size(self.partition_bytes, "MB"),
            format_size(self.file_bytes, "MB"),
        )
        return (
            f"archived {self.month}: {self.rows:,} readings, partition {partition} "
            f"(table + indexes) -> {self.file.name} {file} "
            f"({self.saving:.1%} smaller){aggregates}"
        )


@contextmanager
def _locked(conn: psycopg.Connection, month: Month, building: int) -> Iterator[MonthLock]:
    """The building-month's lock, or a refusal when a load, premake, archive or restore holds
    it."""
    with ExitStack() as stack:
        try:
            lock = stack.enter_context(month_lock(conn, month, wait=False, building=building))
        except MonthBusy:
            raise ArchiveError(
                f"{month} is being loaded, archived or restored right now; try again later"
            ) from None
        yield lock


def check_directory(directory: Path) -> None:
    """Refuse, before touching anything, an archive directory that cannot take files."""
    probe = directory / f".probe-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as error:
        raise ArchiveError(
            f"archive directory {directory} is not writable: {error.strerror or error}"
        ) from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_partition(conn: psycopg.Connection, table: sql.Composable) -> pl.DataFrame:
    """A month table's readings sorted by (sensor_id, ts), in the validated layer's dtypes."""
    statement = sql.SQL(query("select_partition_pairs")).format(table=table)
    frames = []
    with conn.transaction(), conn.cursor(name=f"archive_{uuid.uuid4().hex[:8]}") as cursor:
        cursor.itersize = 16
        cursor.execute(statement, binary=True)
        for sensor_id, pairs in cursor:
            frames.append(pgcopy.decode_pairs(int(sensor_id), bytes(pairs)))
    if not frames:
        return pl.DataFrame(schema=VALID_READINGS_SCHEMA)
    return pl.concat(frames)


def _totals(figures: Figures) -> tuple[int, float, int]:
    return (
        sum(n for n, _, _ in figures.values()),
        sum(t for _, t, _ in figures.values()),
        sum(h for _, _, h in figures.values()),
    )


def _write_verified(
    frame: pl.DataFrame, figures: Figures, target: Path, month: Month
) -> tuple[int, str]:
    """Write the Parquet file next to `target`, verify it against `figures`, move it into place.
    Returns its size and SHA-256; on any failure nothing is left behind."""
    try:
        with replacing_file(target, durable=True) as part:
            frame.write_parquet(
                part,
                compression="zstd",
                compression_level=COMPRESSION_LEVEL,
                statistics=True,
                row_group_size=_ROW_GROUP,
            )
            written = pl.read_parquet(part)
            if written.schema != frame.schema:
                raise ArchiveError(f"{month}: the written file has another schema")
            mismatched = mismatched_sensors(figures, as_figures(frame_fingerprints(written)))
            if mismatched:
                raise ArchiveError(
                    f"{month}: the written file differs from the partition for sensor(s) "
                    f"{mismatched[:10]}; nothing was dropped"
                )
            sha = _sha256(part)
            size = part.stat().st_size
        return size, sha
    except OSError as error:
        raise ArchiveError(
            f"cannot write the archive of {month} to {target.parent}: "
            f"{error.strerror or error}; nothing was dropped"
        ) from None


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    try:
        with replacing_file(path, durable=True) as part:
            part.write_text(json.dumps(payload, indent=2) + "\n")
    except OSError as error:
        raise ArchiveError(
            f"cannot write {path}: {error.strerror or error}; nothing was dropped"
        ) from None


def archive_month(
    conn: psycopg.Connection,
    month: Month,
    directory: Path,
    drop_aggregates: bool = False,
    before_drop: Callable[[], None] | None = None,
    building: int = BUILDING_ID,
) -> ArchiveResult:
    """Archive one building-month's raw readings, then drop its partition (see the module
    docstring).

    `conn` is autocommit. `before_drop` runs after the file and manifest are in place and before
    the drop (tests inject a crash there).
    """
    key = str(month)
    check_directory(directory)
    parquet, manifest_path = paths(directory, month, building)
    with _locked(conn, month, building) as lock:
        found = maintenance.inventory(conn)
        tier = DAYS if month in found.building_months(DAYS.parent, building) else READINGS
        if month not in found.building_months(tier.parent, building):
            if month in maintenance.archived_months(conn, building):
                raise ArchiveError(f"{key} is already archived ({parquet}); nothing to do")
            raise ArchiveError(f"{key} has no readings partition: nothing to archive")
        table: sql.Composable = tier.identifier(month, building=building)
        if tier is DAYS:  # a compressed month: its readings as rows (restored as rows)
            table = compression.decompressed(DAYS.identifier(month, building=building))
        partition_bytes = partitions.size(conn, tier, month, building)
        free = shutil.disk_usage(directory).free
        needed = int(partition_bytes * _FREE_SPACE_SHARE) + _FREE_SPACE_MARGIN
        if free < needed:
            raise ArchiveError(
                f"archive directory {directory} has {format_size(free, 'MB')} free; archiving "
                f"{key} ({format_size(partition_bytes, 'MB')} in the database) needs about "
                f"{format_size(needed, 'MB')}"
            )
        figures = database_fingerprints(conn, table)
        if not figures:
            raise ArchiveError(f"{key} has no readings (an empty partition): nothing to archive")
        frame = read_partition(conn, table)
        file_bytes, sha = _write_verified(frame, figures, parquet, month)
        rows, total, checksum = _totals(figures)
        manifest = Manifest(
            format=FORMAT,
            month=key,
            file_name=parquet.name,
            file_bytes=file_bytes,
            file_sha256=sha,
            rows=rows,
            value_sum=total,
            checksum=str(checksum),
            sensors={str(s): [n, t, str(h)] for s, (n, t, h) in sorted(figures.items())},
            partition_bytes=partition_bytes,
            archived_at=datetime.now(UTC).isoformat(timespec="seconds"),
            building_id=building,
        )
        _write_json(manifest_path, asdict(manifest))
        del frame
        if before_drop is not None:
            before_drop()
        lock.ensure_held()
        with conn.transaction():
            conn.execute("SET LOCAL lock_timeout = '10s'")
            conn.execute(
                query("upsert_archived_month"),
                {
                    "building": building,
                    "month": month,
                    "file_name": parquet.name,
                    "file_bytes": file_bytes,
                    "file_sha256": sha,
                    "row_count": rows,
                    "value_sum": total,
                    "checksum": checksum,
                    "partition_bytes": partition_bytes,
                    "aggregates_dropped": drop_aggregates,
                },
            )
            for dropped in (tier, HOURLY, DAILY) if drop_aggregates else (tier,):
                partitions.detach_and_drop(conn, dropped, month, building)
    return ArchiveResult(key, rows, partition_bytes, file_bytes, parquet, drop_aggregates)


def drop_archived_aggregates(
    conn: psycopg.Connection, month: Month, building: int = BUILDING_ID
) -> bool:
    """Drop the aggregate partitions of a building-month whose readings are already archived (a
    restore rebuilds them from the archive). False if there was nothing to drop."""
    if month not in maintenance.archived_months(conn, building):
        raise ArchiveError(f"{month} is not archived: its aggregates stay")
    found = maintenance.inventory(conn)
    if all(month not in found.building_months(t.parent, building) for t in (HOURLY, DAILY)):
        return False
    with _locked(conn, month, building), conn.transaction():
        conn.execute("SET LOCAL lock_timeout = '10s'")
        for table in (HOURLY, DAILY):
            partitions.detach_and_drop(conn, table, month, building)
        conn.execute(
            query("update_archived_month_aggregates_dropped"),
            {"building": building, "month": month},
        )
    return True


@dataclass(frozen=True)
class RestoreResult:
    month: str
    rows: int
    aggregates_rebuilt: bool

    def summary(self) -> str:
        rebuilt = "; hourly and daily aggregates rebuilt" if self.aggregates_rebuilt else ""
        return (
            f"restored {self.month}: {self.rows:,} readings, count, sum and checksum equal to "
            f"the archive's manifest{rebuilt}"
        )


def restore_month(
    conn: psycopg.Connection, month: Month, directory: Path, building: int = BUILDING_ID
) -> RestoreResult:
    """Put an archived building-month back exactly; refuse if its readings are in the
    database."""
    key = str(month)
    parquet, manifest_path = paths(directory, month, building)
    if not manifest_path.is_file():
        raise ArchiveError(f"no archive of {key} in {directory} ({manifest_path.name} is missing)")
    manifest = Manifest.read(manifest_path)
    if manifest.month != key or manifest.building_id != building or not parquet.is_file():
        raise ArchiveError(f"{manifest_path} does not describe {parquet.name}, or the file is gone")
    if _sha256(parquet) != manifest.file_sha256:
        raise ArchiveError(
            f"{parquet} does not match its manifest (SHA-256 differs): damaged; nothing restored"
        )
    with _locked(conn, month, building) as lock:
        found = maintenance.inventory(conn)
        if _holds_readings(conn, found, month, building):
            raise ArchiveError(
                f"{key} is already in the database (partitions."
                f"{READINGS.leaf_name(month, building)} holds readings); nothing restored"
            )
        rebuild = any(
            month not in found.building_months(t.parent, building) for t in (HOURLY, DAILY)
        )
        token = f"r{uuid.uuid4().hex[:8]}"
        with conn.transaction():
            rows = _build_restored(conn, month, parquet, manifest, token, rebuild, building)
            lock.ensure_held()
            conn.execute("SET LOCAL lock_timeout = '10s'")
            for table in TABLES if rebuild else (READINGS,):
                partitions.attach(conn, table, month, token, building=building)
            conn.execute(
                query("update_archived_month_restored"), {"month": month, "building": building}
            )
    return RestoreResult(key, rows, rebuild)


def _build_restored(
    conn: psycopg.Connection,
    month: Month,
    parquet: Path,
    manifest: Manifest,
    token: str,
    rebuild_aggregates: bool,
    building: int,
) -> int:
    """Fill fresh unattached tables from the file (same transaction, so nothing is left on a
    crash) and refuse unless the database's figures equal the manifest's."""
    readings = READINGS.identifier(month, token, building)
    for table in TABLES if rebuild_aggregates else (READINGS,):
        partitions.create_staging(conn, table, month, token, building)
    frame = pl.read_parquet(parquet)
    partitions.copy_readings(conn, readings, frame.iter_slices(_ROW_GROUP))
    del frame
    partitions.index_readings(conn, month, token, building)
    found = database_fingerprints(conn, readings)
    mismatched = mismatched_sensors(manifest.figures(), found)
    rows, _, checksum = _totals(found)
    if mismatched or rows != manifest.rows or str(checksum) != manifest.checksum:
        raise ArchiveError(
            f"{manifest.month}: the restored rows differ from the manifest for sensor(s) "
            f"{mismatched[:10]}; nothing restored"
        )
    if rebuild_aggregates:
        partitions.aggregate(conn, month, token, building)
    conn.execute(sql.SQL("ANALYZE {}").format(readings))
    return rows


@dataclass
class RetentionPlan:
    """What a policy does now: months whose raw readings go to the archive, and archived months
    whose aggregates go too."""

    newest: Month | None
    archive: list[Month] = field(default_factory=list)
    drop_aggregates: list[Month] = field(default_factory=list)  # subset of archive, or archived

    def summary(self) -> str:
        if self.newest is None:
            return "nothing loaded: nothing to retain or archive"
        raw = ", ".join(str(m) for m in self.archive) or "none"
        aggregates = ", ".join(str(m) for m in self.drop_aggregates) or "none"
        return (
            f"newest loaded month {self.newest}; archive raw readings of: {raw}; "
            f"drop aggregates of: {aggregates}"
        )


def _months_before(newest: Month, keep: int) -> Month:
    """The first month kept when `keep` months up to `newest` stay."""
    first = newest
    for _ in range(keep - 1):
        first = first.previous()
    return first


def plan_retention(
    conn: psycopg.Connection,
    raw_months: int | None,
    aggregate_months: int | None,
    building: int = BUILDING_ID,
) -> RetentionPlan:
    """The building's months to archive under the policy, counted back from its newest month
    with readings.

    Refused: keeping fewer than one month of raw readings (that would archive every month), or
    aggregates for less time than raw readings.
    """
    if raw_months is not None and raw_months < 1:
        raise ArchiveError(
            f"a retention of {raw_months} month(s) of raw readings would archive every month; "
            "keep at least 1 (BANGKOK_RETAIN_RAW_MONTHS)"
        )
    if aggregate_months is not None and (
        aggregate_months < 1 or (raw_months is not None and aggregate_months < raw_months)
    ):
        raise ArchiveError(
            f"aggregates must be kept at least as long as raw readings "
            f"(BANGKOK_RETAIN_AGGREGATE_MONTHS={aggregate_months}, "
            f"BANGKOK_RETAIN_RAW_MONTHS={raw_months})"
        )
    found = maintenance.inventory(conn)
    with_rows = sorted(
        m
        for b, m in found.building_months_with_readings()
        if b == building and _holds_readings(conn, found, m, building)
    )
    archived = maintenance.archived_months(conn, building)
    candidates = sorted(set(with_rows) | set(archived))
    if not with_rows:
        return RetentionPlan(None)
    newest = with_rows[-1]
    plan = RetentionPlan(newest)
    if raw_months is not None:
        first_kept = _months_before(newest, raw_months)
        plan.archive = [m for m in with_rows if m < first_kept]
        if plan.archive and len(plan.archive) == len(with_rows):
            raise ArchiveError("the policy would archive every month with readings; refused")
    if aggregate_months is not None:
        first_kept = _months_before(newest, aggregate_months)
        gone = set(plan.archive) | set(archived)
        plan.drop_aggregates = [
            m
            for m in candidates
            if m < first_kept
            and m in gone
            and not archived.get(m, False)
            and (
                m in plan.archive
                or any(m in found.building_months(t.parent, building) for t in (HOURLY, DAILY))
            )
        ]
    return plan


def _holds_readings(
    conn: psycopg.Connection, found: maintenance.Inventory, month: Month, building: int
) -> bool:
    """Whether the building-month's readings are in the database: compressed (never empty:
    only loads make them), or an attached rows partition with a reading (not a premade one)."""
    if month in found.building_months(DAYS.parent, building):
        return True
    return month in found.building_months(READINGS.parent, building) and _has_rows(
        conn, month, building
    )


def _has_rows(conn: psycopg.Connection, month: Month, building: int) -> bool:
    """Whether the building-month's attached rows partition holds a reading."""
    row = conn.execute(
        sql.SQL("SELECT EXISTS (SELECT FROM {})").format(
            READINGS.identifier(month, building=building)
        )
    ).fetchone()
    return bool(row and row[0])


def apply_retention(
    conn: psycopg.Connection,
    directory: Path,
    raw_months: int | None,
    aggregate_months: int | None,
    report: Callable[[str], None] = lambda line: None,
    building: int = BUILDING_ID,
) -> RetentionPlan:
    """Carry out the building's plan month by month (each month on its own, oldest first)."""
    plan = plan_retention(conn, raw_months, aggregate_months, building)
    if plan.archive:
        check_directory(directory)
    for month in plan.archive:
        result = archive_month(
            conn, month, directory, month in plan.drop_aggregates, building=building
        )
        report(result.summary())
    for month in plan.drop_aggregates:
        if month not in plan.archive and drop_archived_aggregates(conn, month, building):
            report(f"dropped the aggregates of archived month {month}")
    return plan


def archived(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """The ledger, newest first, for `archive list`."""
    with conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(query("select_archived_months")).fetchall()
    return [
        {
            **row,
            "month": str(Month.of(row["month"])),
            "archived_at": str(row["archived_at"]),
            "restored_at": str(row["restored_at"]) if row["restored_at"] else None,
        }
        for row in rows
    ]
