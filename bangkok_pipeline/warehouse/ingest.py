"""The three steps of a month's ingestion as plain functions; the Dagster assets only call them.

1. `extract_raw_month`: every source file's lines of the month -> the raw layer, sensors registered.
2. `validate_month`: raw layer -> long validated readings, quarantine, fingerprints, counts.
3. `load_month`: validated layer -> the month's partitions in PostgreSQL (see `warehouse.load`).
"""

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
import pyarrow.parquet as pq

from bangkok_pipeline.core import settings
from bangkok_pipeline.core.months import Month
from bangkok_pipeline.source.cache import FileFacts, SourceCache
from bangkok_pipeline.source.catalog import register_floor
from bangkok_pipeline.source.files import (
    SourceError,
)
from bangkok_pipeline.source.layout import (
    BUILDING,
    DATE_COLUMN,
    FLOORS,
    MAX_FLOORS,
    Channel,
    parse_file_name,
    split_header,
)
from bangkok_pipeline.source.state import DirectoryState, FileState
from bangkok_pipeline.transform.coverage import coverage_summary, gap_segments
from bangkok_pipeline.transform.fingerprint import frame_fingerprints
from bangkok_pipeline.transform.layers import RunLayers, parquet_batches, read_json, write_json
from bangkok_pipeline.transform.readings import long_readings
from bangkok_pipeline.transform.validation import (
    QUARANTINE_SCHEMA,
    VALID_READINGS_SCHEMA,
    validate_readings,
)
from bangkok_pipeline.warehouse.load import MonthLoader, MonthLoadResult, ShrinkGuard
from bangkok_pipeline.warehouse.partitions import building_bounds

log = logging.getLogger(__name__)
_BATCH_ROWS = 1_000_000


class IngestError(ValueError):
    """A month that cannot be ingested as it stands; the message says which file and why."""


@dataclass
class RawMonth:
    """What `extract_raw_month` read: per file its header facts, plus what it has to report.

    `files` has an entry for every file of the month's year, including one without a line of
    the month (`lines` 0: its sensors are expected, so its floor counts as 0 % complete), and
    `without_lines` says which these are and why. `waiting` names lines and files dated after
    the last partition (CUBEMS_LAST_MONTH): no month loads them until the partitions are
    extended. `skipped` names files that are not CU-BEMS files at all.
    """

    month: Month
    files: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    without_lines: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    month_digest: str = ""  # source.state digest of the month across files, as sensors see it

    @property
    def lines(self) -> int:
        return sum(int(f["lines"]) for f in self.files)


def source_files(
    source_dir: Path, building: str = BUILDING, floors: range = FLOORS
) -> tuple[list[Path], list[str]]:
    """The `{year}Floor{n}.csv` files of a directory, and warnings for everything else in it.

    A file named for something no month can load is refused (`IngestError`, so every month fails
    until it is removed or renamed, before any file is read or sensor registered): a floor the
    building does not have (`floors`: CU-BEMS's by default), whose sensors would be registered
    for good, or a year before the first partition, whose lines no month would read.
    """
    if not source_dir.is_dir():
        raise IngestError(f"source directory {source_dir} does not exist (set CUBEMS_SOURCE_DIR)")
    files, skipped, refused = [], [], []
    first_year = Month.parse(settings.DATA_FIRST_MONTH).year
    for path in sorted(source_dir.iterdir()):
        if path.is_dir() or path.name.startswith(".") or path.name == "manifest.json":
            continue
        named = parse_file_name(path.name)
        if named is None:
            skipped.append(
                f"{path.name}: not a CU-BEMS file name (expected {{year}}Floor{{n}}.csv)"
            )
        elif named.floor not in floors:
            refused.append(
                f"{path.name}: floor {named.floor} is not a floor of {building} "
                f"(floors {floors[0]}-{floors[-1]})"
            )
        elif named.year < first_year:
            refused.append(
                f"{path.name}: year {named.year} is before the first partition "
                f"{settings.DATA_FIRST_MONTH}"
            )
        else:
            files.append(path)
    if refused:
        raise IngestError(
            "; ".join(refused) + f": no month loads while such a file is in {source_dir}; "
            "remove or rename it"
        )
    if not files:
        raise IngestError(f"no CU-BEMS files in {source_dir}: {_holds(source_dir)}")
    return files, skipped


def _holds(directory: Path, shown: int = 5) -> str:
    """What a folder without CU-BEMS files holds instead, for the error that refuses it."""
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in directory.iterdir())
    expected = "expected {year}Floor{n}.csv files such as 2018Floor1.csv"
    if not names:
        return f"it is empty; {expected}"
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"it holds {', '.join(names[:shown])}{more}; {expected}"


def extract_raw_month(
    conn: psycopg.Connection, source_dir: Path, layers: RunLayers, building: str = BUILDING
) -> RawMonth:
    """Write the month's lines of every source file to the run's raw layer and register their
    sensors in `building` (registered before, as CU-BEMS is; its id is the layers').

    Every file of the month's year is read whole (lines are placed in months by
    `source.month_of_lines`), once for all its months (`source.cache`). Fails (`IngestError`,
    naming the file) on a file that cannot be read, on a file in which no line has a Date that
    places it, and when no file has a line of the month. A file without a line of the month
    still gets an (empty) raw layer, its sensors and a `without_lines` report. Sensors are
    registered only after every file has been read, so a month that fails registers none.
    """
    month = layers.month
    floors = FLOORS if building == BUILDING else MAX_FLOORS
    files, skipped = source_files(source_dir, building, floors)
    cache = SourceCache(layers.source_cache)
    year = month.year
    last = settings.last_month()
    result = RawMonth(month, skipped=skipped)
    states: dict[str, FileState] = {}
    pending: list[tuple[dict[str, object], int, list[Channel]]] = []
    with layers.writing("raw") as folder:
        for path in files:
            source_file = parse_file_name(path.name)
            assert source_file is not None
            if source_file.year > Month.parse(last).year:
                result.waiting.append(
                    f"{path.name}: year {source_file.year} has no partition yet (the last is "
                    f"{last}): raise CUBEMS_LAST_MONTH to load it"
                )
            if source_file.year != year:
                continue
            try:
                state = cache.state(path, source_file.year)  # before reading: conservative
                source, raw = cache.month(path, state, month.key)  # the file read once a year
            except SourceError as error:
                raise IngestError(str(error)) from None
            except OSError as error:
                raise IngestError(f"{path.name}: cannot read ({error.strerror})") from None
            result.waiting += _waiting_lines(source, last)
            if raw.is_empty():
                result.without_lines.append(_without_lines(source, source_file.floor, month))
            known, unknown = split_header(source_file.floor, source.header)
            raw.write_parquet(folder / f"{path.stem}.parquet", compression="zstd")
            states[path.name] = state
            entry: dict[str, object] = {
                "file": path.name,
                "floor": source_file.floor,
                "lines": raw.height,
                "header": list(source.header),
                "unknown_columns": unknown,
                "bom": source.bom,
                "crlf": source.crlf,
                "incomplete_last_line": source.incomplete_last_line,
                "fingerprint": {
                    "size": state.size,
                    "mtime_ns": state.mtime_ns,
                    "header_digest": state.header,
                    "month_digest": state.months.get(month.key),
                },
            }
            result.files.append(entry)
            pending.append((entry, source_file.floor, known))
            del source, raw
        if not result.lines:
            reasons = "; ".join(result.without_lines)
            raise IngestError(
                f"no source rows for {month} in {source_dir}: nothing to load"
                + (f" ({reasons})" if reasons else "")
            )
        first, beyond = building_bounds(layers.building)
        for entry, floor, known in pending:
            sensors = register_floor(conn, floor, known, building)
            if any(not first <= sensor < beyond for sensor in sensors.ids.values()):
                raise IngestError(
                    f"{building}'s sensors are not those of building {layers.building}, whose "
                    f"month this run loads: name the building whose id the run was given"
                )
            entry["sensor_ids"] = {c.column: sensors.ids[c.column] for c in known}
            entry["sensor_kinds"] = {str(sensors.ids[c.column]): c.kind for c in known}
        result.month_digest = DirectoryState(states).month_digests().get(month.key, "")
        write_json(
            folder / "manifest.json",
            {
                "month": month,
                "files": result.files,
                "skipped": skipped,
                "without_lines": result.without_lines,
                "waiting": result.waiting,
                "month_digest": result.month_digest,
            },
        )
    return result


def _waiting_lines(source: FileFacts, last: str) -> list[str]:
    """Reports of a file's lines dated after the last partition: they wait for CUBEMS_LAST_MONTH
    to be raised (their own month loads them then), neither misplaced nor quarantined."""
    return [
        f"{source.name}: {lines:,} lines of {month} have no partition yet (the last is {last}): "
        "raise CUBEMS_LAST_MONTH to load them"
        for month, lines in source.lines_by_month.items()
        if month > last
    ]


def _without_lines(source: FileFacts, floor: int, month: Month) -> str:
    """Why a file of the month's year contributes no line to it (its floor then counts as 0 %)."""
    months = source.months()
    if not months:
        found = "header only, no data lines"
    else:
        span = months[0] if len(months) == 1 else f"{months[0]}..{months[-1]}"
        found = f"no line of {month}, its {source.lines:,} lines are of {span}"
    return f"{source.name}: {found}: floor {floor} has no readings for {month}"


@dataclass
class ValidatedMonth:
    month: Month
    rows_read: int  # data lines
    cells: int
    readings: int
    quarantined: int
    empty_cells: int
    identical_duplicate_lines: int
    expected_readings: int  # minutes of the month x sensors in the headers
    sensors: int
    first_ts: str | None
    last_ts: str | None
    quarantine_by_reason: dict[str, int]
    completeness_by_floor: dict[str, float]

    @property
    def rejected_share(self) -> float:
        total = self.readings + self.quarantined
        return self.quarantined / total if total else 0.0

    @property
    def completeness(self) -> float:
        return self.readings / self.expected_readings if self.expected_readings else 0.0


_DAYS_PER_SLICE = 6  # a file-month is validated in 6 slices of whole days to bound memory


def _day_slices(raw: pl.DataFrame) -> Iterator[pl.DataFrame]:
    """Slices of whole days, one at a time; a line without a readable Date goes with the line
    before it. Zero-copy views when each slice's lines are contiguous (a file in time order).

    Repeated timestamps fall on the same day, so duplicate resolution stays within one slice.
    """
    date = pl.col(DATE_COLUMN)
    day = date.str.slice(8, 2).cast(pl.Int32, strict=False)
    index = pl.when(date.str.contains(r"^\d{4}-\d{2}-\d{2} ")).then(day // _DAYS_PER_SLICE)
    keys = raw.select(index.forward_fill().backward_fill().fill_null(0)).to_series()
    runs = keys.rle()
    values = runs.struct.field("value")
    if values.n_unique() == len(values):  # every slice one run of lines
        start = 0
        for length in runs.struct.field("len"):
            yield raw.slice(start, length)
            start += length
        return
    for value in values.unique(maintain_order=True):
        yield raw.filter(keys == value)


@dataclass
class _FileResult:
    valid: pl.DataFrame  # ts, sensor_id, value (Float32), sorted by sensor and time
    quarantine: pl.DataFrame
    lines: int = 0
    cells: int = 0
    empty_cells: int = 0
    identical_duplicate_lines: int = 0


def _validate_file(raw: pl.DataFrame, entry: dict[str, Any], month: Month) -> _FileResult:
    if raw.is_empty():  # a file without a line of the month: no readings, its floor 0 % complete
        return _FileResult(
            pl.DataFrame(schema=VALID_READINGS_SCHEMA), pl.DataFrame(schema=QUARANTINE_SCHEMA)
        )
    kinds = {int(k): v for k, v in entry["sensor_kinds"].items()}
    valid_parts, quarantine_parts = [], []
    result = _FileResult(pl.DataFrame(), pl.DataFrame())
    for part in _day_slices(raw):
        long = long_readings(part, entry["file"], entry["floor"], month.key, entry["sensor_ids"])
        valid, rejected = validate_readings(long.readings, kinds, month.key, entry["file"])
        valid_parts.append(valid.select("ts", "sensor_id", pl.col("value").cast(pl.Float32)))
        quarantine_parts += [long.quarantine, rejected]
        result.lines += long.lines
        result.cells += long.cells
        result.empty_cells += long.empty_cells
        result.identical_duplicate_lines += long.identical_duplicate_lines
    result.valid = _by_sensor_and_time(pl.concat(valid_parts))
    result.quarantine = pl.concat(quarantine_parts)
    return result


def _by_sensor_and_time(valid: pl.DataFrame) -> pl.DataFrame:
    """`valid` sorted by sensor then time, by one integer key (several times faster than
    sorting by the two columns)."""
    key = pl.col("sensor_id").cast(pl.Int64) * 2**34 + pl.col("ts").dt.epoch("s")
    return valid.sort(key)


def validate_month(layers: RunLayers) -> ValidatedMonth:
    """Raw layer -> validated layer, one file (and a few days of it) at a time to bound memory."""
    month = layers.month
    raw_dir = layers.read_dir("raw")
    manifest = read_json(raw_dir / "manifest.json")
    minutes = month.minutes
    quarantines, fingerprints, gaps, coverages = [], [], [], []
    counts = {"lines": 0, "cells": 0, "readings": 0, "empty": 0, "identical": 0, "expected": 0}
    floor_present: dict[int, int] = {}
    floor_expected: dict[int, int] = {}
    bounds: list[object] = []
    with layers.writing("validated") as folder:
        writer = pq.ParquetWriter(
            folder / "readings.parquet",
            pl.DataFrame(schema=VALID_READINGS_SCHEMA).to_arrow().schema,
            compression="zstd",
        )
        for entry in sorted(
            manifest["files"], key=lambda f: min(f["sensor_ids"].values(), default=0)
        ):
            raw = pl.read_parquet(raw_dir / f"{Path(entry['file']).stem}.parquet")
            checked = _validate_file(raw, entry, month)
            del raw
            valid = checked.valid
            writer.write_table(valid.to_arrow(), row_group_size=_BATCH_ROWS)
            quarantines.append(checked.quarantine)
            fingerprints.append(frame_fingerprints(valid))
            sensor_ids = sorted(set(entry["sensor_ids"].values()))
            file_gaps = gap_segments(valid, sensor_ids, month)
            gaps.append(file_gaps)
            coverages.append(coverage_summary(valid, file_gaps, sensor_ids, month))
            expected = minutes * len(entry["sensor_ids"])
            floor_present[entry["floor"]] = floor_present.get(entry["floor"], 0) + valid.height
            floor_expected[entry["floor"]] = floor_expected.get(entry["floor"], 0) + expected
            counts["lines"] += checked.lines
            counts["cells"] += checked.cells
            counts["readings"] += valid.height
            counts["empty"] += checked.empty_cells
            counts["identical"] += checked.identical_duplicate_lines
            counts["expected"] += expected
            if valid.height:
                bounds += [valid["ts"].min(), valid["ts"].max()]
            del checked, valid  # before the next file's frames exist
        writer.close()
        quarantine = (
            pl.concat(quarantines, how="vertical")
            if quarantines
            else pl.DataFrame(schema=QUARANTINE_SCHEMA)
        )
        quarantine.write_parquet(folder / "quarantine.parquet")
        pl.concat(fingerprints).write_parquet(folder / "fingerprints.parquet")
        pl.concat(gaps).write_parquet(folder / "gaps.parquet")
        pl.concat(coverages).write_parquet(folder / "coverage.parquet")
        by_reason = dict(quarantine.group_by("reason").len().sort("reason").iter_rows())
        result = ValidatedMonth(
            month=month,
            rows_read=counts["lines"],
            cells=counts["cells"],
            readings=counts["readings"],
            quarantined=quarantine.height,
            empty_cells=counts["empty"],
            identical_duplicate_lines=counts["identical"],
            expected_readings=counts["expected"],
            sensors=sum(f.height for f in fingerprints),
            first_ts=str(min(bounds)) if bounds else None,  # type: ignore[type-var]
            last_ts=str(max(bounds)) if bounds else None,  # type: ignore[type-var]
            quarantine_by_reason={str(k): int(v) for k, v in by_reason.items()},
            completeness_by_floor={
                str(floor): round(floor_present[floor] / floor_expected[floor], 6)
                for floor in sorted(floor_expected)
                if floor_expected[floor]
            },
        )
        write_json(
            folder / "summary.json",
            {
                **result.__dict__,
                "sources": {
                    "month_digest": manifest["month_digest"],
                    "files": {f["file"]: f["fingerprint"] for f in manifest["files"]},
                },
            },
        )
    return result


def validated_summary(folder: Path) -> dict[str, Any]:
    """The counts `validate_month` recorded in a validated layer (rows read, quarantined, ...)."""
    summary: dict[str, Any] = read_json(folder / "summary.json")
    return summary


def load_month(
    conn: psycopg.Connection,
    layers: RunLayers,
    is_live: Callable[[str], bool] = lambda run_id: True,
    shrink: ShrinkGuard | None = None,
    on_wait: Callable[[str], None] | None = None,
    keep_as_rows: int | None = None,
) -> MonthLoadResult:
    """The run's validated layer -> PostgreSQL, atomically replacing the month; then the run's
    layers become the month's published ones (`is_live` tells which other runs' to keep). The
    month is written compressed if it is compressed now or the policy `keep_as_rows`
    (BANGKOK_COMPRESS_AFTER_MONTHS) says it is cold.
    `on_wait` is told once if another load (or archive, restore, premake) of the month holds its
    lock and this one waits."""
    folder = layers.read_dir("validated")
    summary = validated_summary(folder)
    started = time.perf_counter()
    result = MonthLoader(
        conn=conn,
        month=layers.month,
        batches=lambda: parquet_batches(folder / "readings.parquet", _BATCH_ROWS),
        fingerprints=pl.read_parquet(folder / "fingerprints.parquet"),
        quarantine=pl.read_parquet(folder / "quarantine.parquet"),
        coverage=pl.read_parquet(folder / "coverage.parquet"),
        gaps=pl.read_parquet(folder / "gaps.parquet"),
        run_id=layers.run_id,
        source_fingerprints=summary["sources"],
        rows_read=summary["rows_read"],
        shrink=shrink or ShrinkGuard(),
        keep_as_rows=keep_as_rows,
        after_swap=lambda: layers.publish(is_live),
        on_wait=on_wait,
        building=layers.building,
    ).run()
    result.timings["total"] = round(time.perf_counter() - started, 3)
    return result
