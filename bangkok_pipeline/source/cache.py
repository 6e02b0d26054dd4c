"""A year file read once for all its months: each month's raw layer, kept until the file changes.

A `{year}Floor{n}.csv` holds up to twelve months, and each month's extraction needs only its own
lines. The first month that reads a file splits all of them (`files.raw_month_frame`) into
`<root>/<file>/<size>-<mtime_ns>/<YYYY-MM>.parquet` beside `facts.json`; the file's other months
then read their Parquet part instead of parsing the whole file again. A file whose size or
mtime changed has another key and is read again (its older entries are removed), exactly like
`state.read_file_state` treats it, and an entry serves only while the header and month digests
that `read_file_state` computes from the file's bytes are the ones it was written with. An entry
is written only when the file's size and mtime were the same before and after reading it, and
appears whole (a rename) or not at all; a cache that cannot be written only makes loads slower.

Those digests cost a read of the whole year file, so `state` remembers them in
`<root>/<file>/state.json` for the file's exact version: its size, mtime, ctime, inode and
device. The kernel sets ctime on every write and no user can set it back, so an edit that
keeps size and mtime still gets its bytes digested again.
"""

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from bangkok_pipeline.core.files import exclusive, replacing_file
from bangkok_pipeline.source.files import (
    LINE_NO,
    SourceText,
    raw_month_frame,
    read_source_lines,
)
from bangkok_pipeline.source.state import FileState, read_file_state

_FACTS = "facts.json"
_STATE = "state.json"
_LOCK = ".lock"


@dataclass(frozen=True)
class FileFacts:
    """What extraction reports about a file besides its lines of one month."""

    name: str
    header: tuple[str, ...]
    bom: bool
    crlf: bool
    incomplete_last_line: bool
    lines: int  # data lines in the whole file
    lines_by_month: dict[str, int]  # data lines per month, in order

    @classmethod
    def of(cls, source: SourceText) -> "FileFacts":
        return cls(
            source.name,
            source.header,
            source.bom,
            source.crlf,
            source.incomplete_last_line,
            source.lines.height,
            source.lines_by_month(),
        )

    def months(self) -> list[str]:
        return list(self.lines_by_month)


class SourceCache:
    """Raw month frames of source files under `root` (BANGKOK_HOME/layers/source-cache)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def state(self, path: Path, year: int) -> FileState:
        """`read_file_state(path, year)`, remembered for this exact version of the file."""
        before = _version(path)
        memo = self.root / path.name / _STATE
        with self._only_one(path):
            stored = _read_json(memo)
            if stored and stored["version"] == before:
                return FileState(**stored["state"])
            state = read_file_state(path, year)
            if _version(path) == before:
                with suppress(OSError), replacing_file(memo) as part:  # a memo is only faster
                    part.write_text(json.dumps({"version": before, "state": asdict(state)}))
            return state

    def month(self, path: Path, state: FileState, month: str) -> tuple[FileFacts, pl.DataFrame]:
        """The file's facts and raw frame of `month` (`state` read before: its size and mtime
        key the entry). Raises what `read_source_lines` raises, naming the file."""
        entry = self.root / path.name / f"{state.size}-{state.mtime_ns}"
        with self._only_one(path):  # months of one file loading at once parse it once
            stored = _read_json(entry / _FACTS)
            if stored and stored["state"] == [state.header, state.months]:  # the same bytes
                facts = FileFacts(**{**stored["facts"], "header": tuple(stored["facts"]["header"])})
                part = entry / f"{month}.parquet"
                if not part.is_file():
                    return facts, _empty_raw(path, facts, month)
                return facts, pl.read_parquet(part)
            source = read_source_lines(path)
            facts = FileFacts.of(source)
            wanted = raw_month_frame(source, month)
            self._write(path, state, entry, source, facts)
            return facts, wanted

    @contextmanager
    def _only_one(self, path: Path) -> Iterator[None]:
        """One process at a time reads or writes the entries of `path` (none if the cache
        folder cannot be written: then every process reads the file itself)."""
        lock = self.root / path.name / _LOCK
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            lock.touch()
        except OSError:
            yield
            return
        with exclusive(lock):
            yield

    def _write(
        self, path: Path, state: FileState, entry: Path, source: SourceText, facts: FileFacts
    ) -> None:
        """Every month of the file into a new entry, if the file did not change meanwhile;
        a cache that cannot be written is only slower, never an error."""
        staging = entry.parent / f".{entry.name}.{uuid.uuid4().hex[:8]}"
        try:
            staging.mkdir(parents=True)
            for key in facts.months():
                raw_month_frame(source, key).write_parquet(
                    staging / f"{key}.parquet", compression="zstd"
                )
            (staging / _FACTS).write_text(
                json.dumps({"facts": asdict(facts), "state": [state.header, state.months]})
            )
            after = path.stat()
            if (after.st_size, after.st_mtime_ns) != (state.size, state.mtime_ns):
                return
            for older in entry.parent.iterdir():  # entries of earlier versions of the file
                if older.is_dir() and older.name != entry.name and not older.name.startswith("."):
                    shutil.rmtree(older, ignore_errors=True)
            os.rename(staging, entry)
        except OSError:
            pass
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _version(path: Path) -> list[int]:
    """What identifies one version of a file's bytes without reading them."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _empty_raw(path: Path, facts: FileFacts, month: str) -> pl.DataFrame:
    """The (empty) raw frame of a month the file has no line of, with the file's columns."""
    lines = pl.DataFrame(schema={LINE_NO: pl.Int64, "line": pl.String, "month": pl.String})
    source = SourceText(path, facts.header, lines, facts.bom, facts.crlf, False)
    return raw_month_frame(source, month)
