"""Deliberate defects in generated CU-BEMS files, each with the quarantine reason it must produce.

Why: the loader promises that every line or cell it does not load is set aside with its file, line
and reason. Injecting known defects at known places, and listing them in the manifest, lets tests
hold the loader to that promise exactly. Plans are keyed by (seed, year) for file-level kinds and by
(seed, month) for line-level kinds, so every kind appears as soon as one month is generated.
"""

from dataclasses import asdict, dataclass

import numpy as np

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.devtools.signals import DECIMALS, FILES, PLAN, stream
from bangkok_pipeline.source.layout import FLOORS, parse_column
from bangkok_pipeline.transform.validation import PLAUSIBLE_RANGES

FILE_KINDS = ("bom", "crlf", "column_order", "new_column", "unknown_column", "truncated_last_line")
LINE_KINDS = (
    "garbage_row",
    "bad_timestamp",
    "bad_number",
    "out_of_range",
    "identical_duplicate",
    "conflicting_duplicate",
    "misdated_row",
    "off_minute_row",
)
KINDS = FILE_KINDS + LINE_KINDS

# The loader's fixed vocabulary of quarantine reasons; kinds absent here are loaded normally.
REASONS: dict[str, str] = {
    "garbage_row": "unparseable_row",
    "bad_timestamp": "invalid_timestamp",
    "bad_number": "invalid_number",
    "out_of_range": "out_of_range",
    "conflicting_duplicate": "conflicting_duplicate",
    "truncated_last_line": "incomplete_last_line",
    "misdated_row": "outside_partition",
    "off_minute_row": "invalid_timestamp",
}

# The loader's own bounds, by unit: a conflicting value must stay plausible.
_HIGHEST = {r.unit: r.high for r in PLAUSIBLE_RANGES.values()}

_GARBAGE = (
    b"### gateway reboot ###",
    b"ERROR: modbus timeout on meter 3",
    b"ERR,timeout",
    b"-- logger restarted --",
)
_NOT_NUMBERS = ("ERR", "#VALUE!", "nan?", "--", "1..2")
_OUT_OF_RANGE: dict[str, tuple[str, ...]] = {
    "kW": ("-5.0", "250.0", "-0.5"),
    "degC": ("999.0", "-40.0", "85.5"),
    "RH%": ("140.0", "-3.0", "101.5"),
    "lux": ("-10.0", "99999.0", "65535.0"),
}
# Another plausible reading of the same unit, for a conflicting repeat of a row.
_CONFLICT_STEP = {"kW": 0.37, "degC": 0.8, "RH%": 2.5, "lux": 25.0}

# Keep line-level defects away from a month's first and last hour, and from each other.
_EDGE_ROWS = 60
_SPACING = 3


@dataclass
class Defect:
    """One injected defect as the manifest lists it; `line` is 1-based, the header is line 1."""

    kind: str
    file: str
    line: int | None
    column: str | None
    month: str | None
    reason: str | None
    text: str | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def plan_files(seed: int, year: int) -> dict[int, str]:
    """Each file-level kind on its own floor of the year's seven files."""
    floors = stream(seed, year, 0, 0, FILES).permutation(list(FLOORS))
    return {int(floor): kind for floor, kind in zip(floors, FILE_KINDS, strict=False)}


def plan_lines(seed: int, month: Month) -> dict[int, dict[str, int]]:
    """How many of each line-level kind every floor's chunk of `month` gets (1-3 floors a kind)."""
    rng = stream(seed, month.year, month.number, 0, PLAN)
    plan: dict[int, dict[str, int]] = {floor: {} for floor in FLOORS}
    for kind in LINE_KINDS:
        floors = rng.choice(list(FLOORS), size=int(rng.integers(1, 4)), replace=False)
        for floor in floors:
            plan[int(floor)][kind] = int(rng.integers(1, 4))
    return plan


def new_column_name(floor: int, columns: list[str]) -> str:
    """A pattern-conforming AC unit not in the layout: AC1 of the first zone without AC."""
    channels = [c for c in (parse_column(floor, name) for name in columns) if c is not None]
    with_ac = {c.zone for c in channels if c.kind == "ac"}
    zones = sorted({c.zone for c in channels})
    zone = next((z for z in zones if z not in with_ac), max(zones) + 1)
    return f"z{zone}_AC1(kW)"


def unknown_column_name(floor: int) -> str:
    """A column the grammar rejects (CO2 is no CU-BEMS channel), in a zone every floor has."""
    return "z2_CO2(ppm)"


def shuffled(columns: list[str], seed: int, year: int, floor: int) -> list[str]:
    """The channel columns in another (never the published) order."""
    rng = stream(seed, year, 0, floor, FILES)
    order = list(columns)
    while order == columns:
        order = [columns[i] for i in rng.permutation(len(columns))]
    return order


def _number(value: float, unit: str) -> str:
    """A reading as the generator writes it: rounded, shortest repr."""
    return repr(round(value, DECIMALS[unit]) + 0.0)


def _conflicting(text: str, unit: str) -> str:
    value, step = float(text), _CONFLICT_STEP[unit]
    return _number(value + step if value + step <= _HIGHEST[unit] else value - step, unit)


def _bad_timestamp(date_text: str, rng: np.random.Generator) -> str:
    """A Date field no timestamp parser accepts, derived from a real one."""
    day, clock = date_text.split(" ")
    year, month, dom = day.split("-")
    variants = (
        f"{day} 25:61:00",
        f"{dom}/{month}/{year} {clock[:5]}",
        f"{year}-13-{dom} {clock}",
        "0000-00-00 00:00:00",
    )
    return variants[int(rng.integers(len(variants)))]


def _misdated(date_text: str, rng: np.random.Generator) -> str:
    """A valid minute a year before or after: a line of another year than its file's."""
    shift = 1 if rng.random() < 0.5 else -1
    return f"{int(date_text[:4]) + shift:04d}{date_text[4:]}"


def _off_minute(date_text: str, rng: np.random.Generator) -> str:
    """The same minute with seconds other than 00: readings are one a minute."""
    return f"{date_text[:17]}{int(rng.integers(1, 60)):02d}"


@dataclass(frozen=True)
class Chunk:
    """Where a month's rows of one file sit, and which fields may be corrupted."""

    file: str
    month: str
    first_line: int  # physical line number of the chunk's first row
    header: list[str]  # as written, Date first
    targets: dict[int, str]  # field index -> unit, for layout channel fields


@dataclass
class _Edit:
    row: bytes | None = None  # replacement of the anchor row
    row_defects: list[Defect] | None = None
    after: list[tuple[bytes, list[Defect]]] | None = None  # lines inserted after the anchor


def inject(
    body: bytes, counts: dict[str, int], chunk: Chunk, rng: np.random.Generator
) -> tuple[bytes, int, list[Defect]]:
    """Apply line-level defects to a chunk of `\\n`-terminated rows.

    Returns the new body, its number of lines and the defects with their physical line numbers.
    Each defect gets its own anchor row, at least `_SPACING` rows from any other, so no line
    carries two defects and duplicated rows never hold bad cells.
    """
    lines = body.split(b"\n")[:-1]
    kinds = [kind for kind in LINE_KINDS for _ in range(counts.get(kind, 0))]
    candidates = np.arange(_EDGE_ROWS, len(lines) - _EDGE_ROWS, _SPACING)
    kinds = kinds[: len(candidates)]
    if not kinds:
        return body, len(lines), []
    anchors = rng.choice(candidates, size=len(kinds), replace=False)
    edits: dict[int, _Edit] = {}
    for kind, anchor in zip(kinds, anchors, strict=True):
        edits[int(anchor)] = _edit(kind, lines[int(anchor)], chunk, rng)

    out: list[bytes] = []
    defects: list[Defect] = []
    previous, inserted = 0, 0
    for anchor in sorted(edits):
        edit = edits[anchor]
        out.extend(lines[previous:anchor])
        out.append(edit.row if edit.row is not None else lines[anchor])
        for defect in edit.row_defects or []:
            defect.line = chunk.first_line + anchor + inserted
            defects.append(defect)
        for text, line_defects in edit.after or []:
            inserted += 1
            out.append(text)
            for defect in line_defects:
                defect.line = chunk.first_line + anchor + inserted
                defects.append(defect)
        previous = anchor + 1
    out.extend(lines[previous:])
    return b"\n".join(out) + b"\n", len(out), defects


def _edit(kind: str, line: bytes, chunk: Chunk, rng: np.random.Generator) -> _Edit:
    fields = line.decode().split(",")

    def defect(column: str | None, text: str | None, reason: str | None = None) -> Defect:
        return Defect(
            kind, chunk.file, None, column, chunk.month, reason or REASONS.get(kind), text
        )

    if kind == "garbage_row":
        text = _GARBAGE[int(rng.integers(len(_GARBAGE)))]
        return _Edit(after=[(text, [defect(None, text.decode())])])
    if kind == "bad_timestamp":
        stamp = _bad_timestamp(fields[0], rng)
        return _Edit(after=[(",".join([stamp, *fields[1:]]).encode(), [defect(None, stamp)])])
    if kind in ("misdated_row", "off_minute_row"):
        stamp = (_misdated if kind == "misdated_row" else _off_minute)(fields[0], rng)
        return _Edit(after=[(",".join([stamp, *fields[1:]]).encode(), [defect(None, stamp)])])
    if kind == "identical_duplicate":
        return _Edit(after=[(line, [defect(None, None)])])

    filled = [i for i in chunk.targets if fields[i] != ""]
    if not filled:  # nothing to corrupt on an all-empty row: repeat it instead
        return _edit("identical_duplicate", line, chunk, rng)
    if kind == "conflicting_duplicate":
        k = min(int(rng.integers(1, 4)), len(filled))
        changed = sorted(int(i) for i in rng.choice(filled, size=k, replace=False))
        repeat = list(fields)
        earlier = []
        for i in changed:
            repeat[i] = _conflicting(fields[i], chunk.targets[i])
            earlier.append(defect(chunk.header[i], fields[i]))
        return _Edit(row_defects=earlier, after=[(",".join(repeat).encode(), [])])

    i = int(rng.choice(filled))
    unit = chunk.targets[i]
    choices = _NOT_NUMBERS if kind == "bad_number" else _OUT_OF_RANGE[unit]
    fields[i] = choices[int(rng.integers(len(choices)))]
    return _Edit(row=",".join(fields).encode(), row_defects=[defect(chunk.header[i], fields[i])])


def truncate(line: bytes, rng: np.random.Generator) -> bytes:
    """Cut a row mid-way, after its Date field and before its last comma: a half-written line."""
    first, last = line.index(b","), line.rindex(b",")
    return line[: int(rng.integers(first + 1, last + 1))]
