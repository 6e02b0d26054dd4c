"""A faithful stand-in for the CU-BEMS files, `{year}Floor{n}.csv`, plus a manifest of them.

Why: the real 733 MB dataset cannot ship with the project, and tests need files whose every gap and
defect is known. The generator writes what the real files look like (layout, number format, Bangkok
local timestamps, empty cells, missing minutes) and, on request, the defects a loader must survive.
`manifest.json` states what a correct loader must find: readings per file-month and quarantine rows
by reason.

Grain: one file per (year, floor); streamed month by month so memory stays bounded at full scale.
"""

import datetime
import hashlib
import io
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from tqdm import tqdm

from bangkok_pipeline.core.files import replacing_file
from bangkok_pipeline.core.months import Month
from bangkok_pipeline.core.settings import DATA_FIRST_MONTH
from bangkok_pipeline.devtools import defects as dfx
from bangkok_pipeline.devtools.signals import (
    DECIMALS,
    DEFECTS,
    EXTRA,
    GAPS,
    Calendar,
    FloorModel,
    Weather,
    calendar,
    stream,
    weather,
)
from bangkok_pipeline.source.layout import (
    DATE_COLUMN,
    FLOORS,
    TIMESTAMP_FORMAT,
    file_name,
    floor_columns,
    parse_column,
    parse_file_name,
)

BOM = b"\xef\xbb\xbf"
MANIFEST = "manifest.json"

_DROPOUT_SHARE = 0.005  # of cells, in short runs
_S1_OUTAGE_P = 0.15  # per zone and month: the sensor out for hours
_HOUR_OUTAGE_P = 0.25  # per file-month: the logger down for about an hour
_EDGE_MINUTES = 60  # a month's first and last hour are never missing


class GeneratorError(Exception):
    """Generation cannot go ahead; the message is one line, fit for the command line."""


@dataclass(frozen=True)
class _FileSpec:
    """What one file looks like: its columns as written and the file-level defect it carries."""

    year: int
    floor: int
    kind: str | None  # file-level defect kind
    layout: list[str]
    order: list[str]  # channel columns as written, extras last
    new_column: str | None
    unknown_column: str | None
    new_from: dict[Month, int]  # first minute of each month with new-column values
    last_month: Month

    @property
    def name(self) -> str:
        return file_name(self.year, self.floor)

    @property
    def header(self) -> list[str]:
        return [DATE_COLUMN, *self.order]


@dataclass
class _Written:
    """One month of one file as written, with what a correct loader must find in it."""

    body: bytes
    lines: int
    stats: dict[str, object]
    defects: list[dfx.Defect] = field(default_factory=list)


def generate(
    out: Path,
    months: list[Month],
    seed: int = 42,
    defects: bool = False,
    progress: bool = False,
    add: bool = False,
) -> dict:
    """Write `{year}Floor{n}.csv` (n = 1..7) for the requested months, and `manifest.json`.

    Files of a year hold only the requested months of that year, in time order, and replace any
    existing files of the same name; with `add`, the months already in `out` (its manifest, same
    seed and defects) are kept, so the files hold both. A file whose bytes come out the same is
    left untouched, and a year whose months are unchanged is not generated again. A month's rows
    depend only on (seed, month, floor, defects), so a month comes out the same whatever else is
    generated with it; only the month that ends a file with an unfinished line (`--defects`)
    changes when later months follow it, as a logger's file does when it finishes the line.

    Manifest, per file and month: `rows` data lines attributed to the month (a line without a
    valid timestamp belongs to the month of the nearest valid line before it); `valid_readings`
    distinct (column, minute) readings to load, from channel columns (layout or new), numeric,
    in range, on lines with a valid timestamp; `empty_cells` distinct (column, minute) pairs left
    empty; `missing_minutes` minutes with no line; `quarantine` expected rows by reason. The
    top-level `defects` lists every injected defect; `with_defects` says whether any were asked.
    """
    chosen = _months(months)
    out = Path(out)
    _prepare(out)
    previous = _previous(out, seed, defects) if add else None
    if previous is not None:
        chosen = sorted(set(chosen) | {Month.parse(m) for m in previous["months"]})
    manifest: dict = {
        "seed": seed,
        "with_defects": defects,
        "months": [str(m) for m in chosen],
        "files": {},
        "defects": [],
        "totals": {},
    }
    bar = tqdm(
        total=len(chosen) * len(FLOORS), desc="generate", unit="file-month", disable=not progress
    )
    try:
        for year in sorted({m.year for m in chosen}):
            of_year = [m for m in chosen if m.year == year]
            if previous is not None and _keep_year(out, previous, year, of_year, manifest):
                bar.update(len(of_year) * len(FLOORS))
                continue
            _write_year(out, year, of_year, seed, defects, manifest, bar)
        manifest["defects"].sort(key=lambda d: (d["file"], d["line"] or 0))
        manifest["totals"] = _totals(manifest["files"])
        with replacing_file(out / MANIFEST) as part:
            part.write_text(json.dumps(manifest, indent=2) + "\n")
    except OSError as error:
        raise GeneratorError(f"cannot write to {out}: {error.strerror or error}") from error
    finally:
        bar.close()
    return manifest


def _previous(out: Path, seed: int, defects: bool) -> dict | None:
    """The manifest of the stand-in files already in `out`, if they match `seed` and `defects`."""
    path = out / MANIFEST
    if not path.is_file():
        if any(parse_file_name(p.name) for p in out.iterdir()):
            raise GeneratorError(
                f"{out} holds CU-BEMS files but no {MANIFEST}: nothing known to add to"
            )
        return None
    try:
        previous = json.loads(path.read_text())
        found = (previous["seed"], previous["with_defects"], previous["months"])
    except (ValueError, KeyError, TypeError) as error:
        raise GeneratorError(f"{path} is not a generator manifest: {error}") from error
    if found[:2] != (seed, defects):
        given = f"--seed {found[0]}" + (" --defects" if found[1] else " without --defects")
        raise GeneratorError(f"{out} was generated with {given}; add months with the same options")
    return previous


def _keep_year(out: Path, previous: dict, year: int, months: list[Month], manifest: dict) -> bool:
    """Carry a year over from the previous manifest if its months and its files are unchanged."""
    if [m for m in previous["months"] if m.startswith(f"{year:04d}-")] != [str(m) for m in months]:
        return False
    names = [file_name(year, floor) for floor in FLOORS]
    entries = {name: previous["files"].get(name) for name in names}
    if any(e is None or _sha256(out / n) != e["sha256"] for n, e in entries.items()):
        return False
    manifest["files"].update(entries)
    manifest["defects"] += [d for d in previous["defects"] if d["file"] in entries]
    return True


def _sha256(path: Path) -> str | None:
    """The file's SHA-256, or None if it is missing."""
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except FileNotFoundError:
        return None


def _months(months: list[Month]) -> list[Month]:
    chosen = sorted(set(months))
    if not chosen:
        raise GeneratorError("no months to generate")
    low = Month.parse(DATA_FIRST_MONTH)
    outside = [str(m) for m in chosen if m < low]
    if outside:
        raise GeneratorError(f"{', '.join(outside)} before the data (from {DATA_FIRST_MONTH})")
    return chosen


def _prepare(out: Path) -> None:
    """Fail before any work if `out` cannot take files."""
    if out.exists() and not out.is_dir():
        raise GeneratorError(f"cannot write to {out}: not a directory")
    probe = out / f".probe-{os.getpid()}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise GeneratorError(f"cannot write to {out}: {error.strerror or error}") from error


def _minute_of(month: Month) -> int:
    """Minutes from the epoch to the month's first minute (local time, as the files are)."""
    return int(np.datetime64(month.first_day, "m").astype(np.int64))


def _file_specs(year: int, months: list[Month], seed: int, defects: bool) -> dict[int, _FileSpec]:
    kinds = dfx.plan_files(seed, year) if defects else {}
    first = max(Month(year, 1), Month.parse(DATA_FIRST_MONTH))
    installed = _minute_of(first) + first.minutes // 3  # a third of the way into its first month
    new_from = {m: int(np.clip(installed - _minute_of(m), 0, m.minutes)) for m in months}
    specs = {}
    for floor in FLOORS:
        layout = floor_columns(floor)
        kind = kinds.get(floor)
        order = dfx.shuffled(layout, seed, year, floor) if kind == "column_order" else list(layout)
        new = dfx.new_column_name(floor, layout) if kind == "new_column" else None
        unknown = dfx.unknown_column_name(floor) if kind == "unknown_column" else None
        order += [c for c in (new, unknown) if c]
        specs[floor] = _FileSpec(
            year, floor, kind, layout, order, new, unknown, new_from, months[-1]
        )
    return specs


class _Writer:
    """Streams one file under a hidden name and moves it into place only when complete."""

    def __init__(self, out: Path, spec: _FileSpec) -> None:
        self.path = out / spec.name
        self.part = out / f".{spec.name}.part"
        self.crlf = spec.kind == "crlf"
        self.handle = self.part.open("wb")
        self.sha256 = hashlib.sha256()
        self.lines = 0

    def write(self, data: bytes, lines: int) -> None:
        if self.crlf:
            data = data.replace(b"\n", b"\r\n")
        self.handle.write(data)
        self.sha256.update(data)
        self.lines += lines

    def commit(self) -> None:
        """Move the file into place, or leave an identical one as it is (its mtime too)."""
        self.handle.close()
        same_size = self.path.is_file() and self.path.stat().st_size == self.part.stat().st_size
        if same_size and _sha256(self.path) == self.sha256.hexdigest():
            self.part.unlink()
        else:
            os.replace(self.part, self.path)

    def abort(self) -> None:
        self.handle.close()
        self.part.unlink(missing_ok=True)


def _write_year(
    out: Path,
    year: int,
    months: list[Month],
    seed: int,
    defects: bool,
    manifest: dict,
    bar: tqdm,
) -> None:
    specs = _file_specs(year, months, seed, defects)
    writers: dict[int, _Writer] = {}
    try:
        for floor, spec in specs.items():
            writers[floor] = _Writer(out, spec)
            header = (",".join(spec.header) + "\n").encode()
            writers[floor].write((BOM if spec.kind == "bom" else b"") + header, 1)
            manifest["files"][spec.name] = {
                "year": year,
                "floor": floor,
                "header": spec.header,
                "bom": spec.kind == "bom",
                "crlf": spec.kind == "crlf",
                "unknown_columns": [spec.unknown_column] if spec.unknown_column else [],
                "new_columns": [spec.new_column] if spec.new_column else [],
                "lines": 0,
                "sha256": "",
                "months": {},
            }
            manifest["defects"] += [d.as_dict() for d in _file_defects(spec)]
        for month in months:
            cal = calendar(month)
            wx = weather(seed, cal)
            plan = dfx.plan_lines(seed, month) if defects else {}
            for floor, spec in specs.items():
                writer = writers[floor]
                chunk = _month_chunk(spec, cal, wx, seed, plan.get(floor, {}), writer.lines + 1)
                writer.write(chunk.body, chunk.lines)
                manifest["files"][spec.name]["months"][str(month)] = chunk.stats
                manifest["defects"] += [d.as_dict() for d in chunk.defects]
                bar.update()
        for floor, writer in writers.items():
            writer.commit()
            entry = manifest["files"][specs[floor].name]
            entry["lines"] = writer.lines
            entry["sha256"] = writer.sha256.hexdigest()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise


def _file_defects(spec: _FileSpec) -> list[dfx.Defect]:
    """File-level kinds as manifest entries, line null; a truncated line is listed at its cut."""
    if spec.kind is None or spec.kind == "truncated_last_line":
        return []
    column = spec.new_column or spec.unknown_column
    return [dfx.Defect(spec.kind, spec.name, None, column, None, None, None)]


def _missing_minutes(minutes: int, rng: np.random.Generator) -> np.ndarray:
    """Rows the logger never wrote: a few 1-30 minute gaps, sometimes an hour-long outage.

    Returns the mask of minutes that are present. Gaps never touch a month's first or last hour.
    """
    lengths = [int(n) for n in np.minimum(rng.geometric(0.15, size=int(rng.integers(2, 6))), 30)]
    if rng.random() < _HOUR_OUTAGE_P:
        lengths.append(int(rng.integers(55, 76)))
    present = np.ones(minutes, dtype=bool)
    for length in lengths:
        for _ in range(20):
            start = int(rng.integers(_EDGE_MINUTES, minutes - _EDGE_MINUTES - length))
            if present[start - 1 : start + length + 1].all():
                present[start : start + length] = False
                break
    return present


def _dropouts(rows: int, columns: int, rng: np.random.Generator) -> np.ndarray:
    """Empty cells from sensor dropouts: short runs in one column, about 0.5% of cells."""
    mean_run = 1 / 0.3
    runs = int(_DROPOUT_SHARE * rows * columns / mean_run)
    lengths = np.minimum(rng.geometric(0.3, size=runs), 20)
    starts = rng.integers(0, rows, size=runs)
    cols = rng.integers(0, columns, size=runs)
    edges = np.zeros((rows + 1, columns), dtype=np.int32)
    np.add.at(edges, (starts, cols), 1)
    np.add.at(edges, (np.minimum(starts + lengths, rows), cols), -1)
    return np.cumsum(edges, axis=0)[:rows] > 0


def _sensor_outages(
    floor: int, columns: list[str], rows: int, rng: np.random.Generator
) -> np.ndarray:
    """A zone's S1 multisensor out for 1-6 hours now and then: its three columns empty together."""
    channels = [parse_column(floor, c) for c in columns]
    mask = np.zeros((rows, len(columns)), dtype=bool)
    zones = sorted({c.zone for c in channels if c is not None and c.channel == "S1"})
    for zone in zones:
        if rng.random() < _S1_OUTAGE_P:
            length = int(rng.integers(60, 361))
            start = int(rng.integers(0, rows - length))
            for i, c in enumerate(channels):
                if c is not None and c.zone == zone and c.channel == "S1":
                    mask[start : start + length, i] = True
    return mask


def _units(floor: int, columns: list[str]) -> dict[str, str]:
    units = {}
    for column in columns:
        channel = parse_column(floor, column)
        if channel is None:
            raise ValueError(f"{column!r} is not a channel column")
        units[column] = channel.unit
    return units


def _round(values: np.ndarray, unit: str) -> np.ndarray:
    """Round as the real files do; `+ 0.0` turns -0.0 into 0.0 so it is written `0.0`."""
    return np.round(values, DECIMALS[unit]) + 0.0


def _month_chunk(
    spec: _FileSpec,
    cal: Calendar,
    wx: Weather,
    seed: int,
    counts: dict[str, int],
    first_line: int,
) -> _Written:
    """Simulate, punch gaps into, serialise and (if planned) damage one month of one file."""
    month, minutes, floor = cal.month, cal.minutes, spec.floor
    model = FloorModel(seed, floor, cal, wx)
    units = _units(floor, spec.layout)
    raw = model.channels(spec.layout)
    gaps = stream(seed, month.year, month.number, floor, GAPS)
    present = _missing_minutes(minutes, gaps)
    empty = _dropouts(minutes, len(spec.layout), gaps)
    empty |= _sensor_outages(floor, spec.layout, minutes, gaps)
    columns: dict[str, np.ndarray] = {}
    for i, column in enumerate(spec.layout):
        columns[column] = np.where(empty[:, i], np.nan, _round(raw[:, i], units[column]))
    readable = list(spec.layout)

    extra = stream(seed, month.year, month.number, floor, EXTRA)
    if spec.new_column:
        channel = parse_column(floor, spec.new_column)
        assert channel is not None
        values = _round(model.ac(channel.zone, int(channel.channel[2:]), coupled=False), "kW")
        values[: spec.new_from[month]] = np.nan
        values[_dropouts(minutes, 1, extra)[:, 0]] = np.nan
        columns[spec.new_column] = values
        readable.append(spec.new_column)
        units[spec.new_column] = "kW"
    if spec.unknown_column:
        values = np.round(model.co2(2)) + 0.0
        values[_dropouts(minutes, 1, extra)[:, 0]] = np.nan
        columns[spec.unknown_column] = values

    rows = int(present.sum())
    filled = sum(int(np.count_nonzero(~np.isnan(columns[c][present]))) for c in readable)
    stamps = np.datetime64(month.first_day, "m") + np.flatnonzero(present)
    frame = pl.DataFrame(
        [pl.Series(DATE_COLUMN, stamps.astype("datetime64[us]"))]
        + [pl.Series(c, columns[c][present], nan_to_null=True) for c in spec.order]
    )
    buffer = io.BytesIO()
    frame.write_csv(buffer, include_header=False, datetime_format=TIMESTAMP_FORMAT)
    injected: list[dfx.Defect]
    body, lines, injected = buffer.getvalue(), rows, []
    key = str(month)
    rng = stream(seed, month.year, month.number, floor, DEFECTS)
    if counts:
        header = spec.header
        targets = {i: units[c] for i, c in enumerate(header) if c in spec.layout}
        chunk = dfx.Chunk(spec.name, key, first_line, header, targets)
        body, lines, injected = dfx.inject(body, counts, chunk, rng)
    if spec.kind == "truncated_last_line" and month == spec.last_month:
        body, cut = _append_truncated(body, month.next(), rng)
        lines += 1
        injected.append(
            dfx.Defect(
                "truncated_last_line",
                spec.name,
                first_line + lines - 1,
                None,
                key,
                dfx.REASONS["truncated_last_line"],
                cut.decode(),
            )
        )

    spoiled = sum(1 for d in injected if d.kind in ("bad_number", "out_of_range"))
    quarantine = Counter(d.reason for d in injected if d.reason)
    stats = {
        "rows": lines,
        "valid_readings": filled - spoiled,
        "empty_cells": rows * len(readable) - filled,
        "missing_minutes": minutes - rows,
        "identical_duplicates": sum(1 for d in injected if d.kind == "identical_duplicate"),
        "quarantine": dict(sorted(quarantine.items())),
    }
    return _Written(body, lines, stats, injected)


def _append_truncated(
    body: bytes, following: Month, rng: np.random.Generator
) -> tuple[bytes, bytes]:
    """End the file with the next minute's row half-written, as if the logger were mid-write.

    Its timestamp is the first minute of the following month, so no minute of the month depends
    on a line the loader must set aside.
    """
    last = body[body.rindex(b"\n", 0, len(body) - 1) + 1 : -1]
    stamp = datetime.datetime(following.year, following.number, 1).strftime(TIMESTAMP_FORMAT)
    cut = dfx.truncate(stamp.encode() + last[last.index(b",") :], rng)
    return body + cut, cut


def _totals(files: dict[str, dict]) -> dict[str, dict]:
    """Per month over all files: what the whole load of that month must come to."""
    totals: dict[str, dict] = {}
    for entry in files.values():
        for key, stats in entry["months"].items():
            total = totals.setdefault(
                key,
                {
                    "rows": 0,
                    "valid_readings": 0,
                    "empty_cells": 0,
                    "missing_minutes": 0,
                    "identical_duplicates": 0,
                    "quarantine": Counter(),
                },
            )
            for name in ("rows", "valid_readings", "empty_cells", "missing_minutes"):
                total[name] += stats[name]
            total["identical_duplicates"] += stats["identical_duplicates"]
            total["quarantine"].update(stats["quarantine"])
    for total in totals.values():
        total["quarantine"] = dict(sorted(total["quarantine"].items()))
    return dict(sorted(totals.items()))
