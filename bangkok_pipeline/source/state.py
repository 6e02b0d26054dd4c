"""What the source directory holds, month by month, cheaply: for change detection.

A file's state is its size, mtime, a digest of its header and a digest of each month's bytes
(month boundaries found by searching for the first line of each month, so no CSV parsing). A file
whose size and mtime are unchanged is not read again. A month's digest across all files is the
key of its content: when it changes the month must be reloaded, and it names the run.

Safety rules, because a reload replaces a whole month: a deleted file, or a file replaced by an
older or shorter version, is reported and *held* at its last good state instead of being treated
as a change; an unreadable or oversized file is reported and skipped.
"""

import hashlib
import json
import mmap
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bangkok_pipeline.core.settings import DATA_FIRST_MONTH
from bangkok_pipeline.source.layout import parse_file_name

_DIGEST_BYTES = 16


@dataclass
class FileState:
    size: int
    mtime_ns: int
    header: str
    months: dict[str, str]  # YYYY-MM -> digest of the month's lines
    status: str = "ok"  # ok | deleted | held
    observed: tuple[int, int] | None = None  # (size, mtime_ns) last reported when not ok


@dataclass
class DirectoryState:
    files: dict[str, FileState] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({name: asdict(state) for name, state in sorted(self.files.items())})

    @classmethod
    def from_json(cls, text: str | None) -> "DirectoryState":
        return cls.from_dict(json.loads(text) if text else {})

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "DirectoryState":
        return cls(
            {
                name: FileState(
                    **{
                        **entry,
                        "observed": tuple(entry["observed"]) if entry.get("observed") else None,
                    }
                )
                for name, entry in raw.items()
            }
        )

    def month_digests(self) -> dict[str, str]:
        """YYYY-MM -> digest of that month across every file that has it (deleted ones too)."""
        parts: dict[str, list[str]] = {}
        for name, state in sorted(self.files.items()):
            for month, digest in state.months.items():
                parts.setdefault(month, []).append(f"{name}:{state.header}:{digest}")
        return {
            month: hashlib.blake2b("|".join(items).encode(), digest_size=_DIGEST_BYTES).hexdigest()
            for month, items in sorted(parts.items())
        }


@dataclass
class Scan:
    state: DirectoryState
    changed: dict[str, str]  # month -> its new digest
    problems: list[str]


def _digest(data: bytes | memoryview) -> str:
    return hashlib.blake2b(data, digest_size=_DIGEST_BYTES).hexdigest()


def read_file_state(path: Path, year: int) -> FileState:
    """Digest the header and each month's lines of one `{year}Floor{n}.csv`.

    A month starts at its first line; months before the first partition are not looked for (their
    lines are quarantined with their neighbours', `source.month_of_lines`), and lines before the
    first month found count with it, so such lines change the digest of the month that has them.
    """
    stat = path.stat()
    with path.open("rb") as handle:
        if stat.st_size == 0:
            return FileState(0, stat.st_mtime_ns, _digest(b""), {})
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            header_end = data.find(b"\n") + 1 or len(data)
            complete = data.rfind(b"\n") + 1  # an unfinished last line joins the month before it
            starts = []
            for month in range(1, 13):
                key = f"{year:04d}-{month:02d}"
                if key < DATA_FIRST_MONTH:
                    continue
                offset = data.find(f"\n{key}-".encode(), header_end - 1, max(complete - 1, 0))
                if offset != -1:
                    starts.append((offset + 1, key))
            starts.sort()
            if starts:  # the header is followed by the first month's first line, or misplaced ones
                starts[0] = (header_end, starts[0][1])
            months = {}
            for index, (start, key) in enumerate(starts):
                end = starts[index + 1][0] if index + 1 < len(starts) else len(data)
                months[key] = _digest(memoryview(data)[start:end])
            return FileState(stat.st_size, stat.st_mtime_ns, _digest(data[:header_end]), months)


def scan_directory(directory: Path, previous: DirectoryState, max_file_bytes: int) -> Scan:
    """The directory's state now, the months whose content changed, and what to report."""
    problems: list[str] = []
    files: dict[str, FileState] = {}
    seen = set()
    for path in sorted(directory.iterdir()):
        source = parse_file_name(path.name)
        if source is None or not path.is_file():
            continue
        seen.add(path.name)
        old = previous.files.get(path.name)
        try:
            stat = path.stat()
        except OSError as error:
            problems.append(f"{path.name}: cannot read ({error.strerror}); skipped")
            if old:
                files[path.name] = old
            continue
        now = (stat.st_size, stat.st_mtime_ns)
        if old and old.status == "ok" and (old.size, old.mtime_ns) == now:
            files[path.name] = old
            continue
        if stat.st_size > max_file_bytes:
            problems.append(
                f"{path.name}: {stat.st_size:,} bytes is over the {max_file_bytes:,}-byte limit "
                "(BANGKOK_MAX_SOURCE_BYTES); skipped"
            )
            if old:
                files[path.name] = old
            continue
        if (
            old
            and old.status != "deleted"
            and (stat.st_size < old.size or stat.st_mtime_ns < old.mtime_ns)
        ):
            if old.observed != now:
                problems.append(
                    f"{path.name}: went backwards (size {old.size:,} -> {stat.st_size:,} bytes, "
                    "or an older modification time): an older version? Not loaded; the loaded "
                    "months stay as they are. Materialize them by hand if this is intended."
                )
            files[path.name] = FileState(**{**asdict(old), "status": "held", "observed": now})
            continue
        try:
            files[path.name] = read_file_state(path, source.year)
        except OSError as error:
            problems.append(f"{path.name}: cannot read ({error.strerror}); skipped")
            if old:
                files[path.name] = old
    for name, old in previous.files.items():
        if name in seen:
            continue
        if old.status != "deleted":
            problems.append(
                f"{name}: deleted or moved from {directory}; its months stay loaded as they are "
                "(nothing is deleted from the database)"
            )
        files[name] = FileState(**{**asdict(old), "status": "deleted"})
    state = DirectoryState(files)
    before = previous.month_digests()
    changed = {m: d for m, d in state.month_digests().items() if before.get(m) != d}
    return Scan(state, changed, problems)


def building_states_from_json(text: str | None, first: str) -> dict[str, DirectoryState]:
    """Each building's directory state by name, as the source sensor keeps them in its cursor.
    The cursor of a version that watched one folder is the state of building `first`."""
    raw: dict[str, Any] = json.loads(text) if text else {}
    if any(parse_file_name(name) for name in raw):  # one folder's files
        return {first: DirectoryState.from_dict(raw)}
    return {name: DirectoryState.from_dict(files) for name, files in raw.items()}


def building_states_to_json(states: dict[str, DirectoryState]) -> str:
    return json.dumps({name: json.loads(state.to_json()) for name, state in sorted(states.items())})
