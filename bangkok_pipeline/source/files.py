"""Reading one CU-BEMS source file and its lossless raw layer, one month at a time.

Grain: a `SourceText` holds every physical line of one `{year}Floor{n}.csv`; `raw_month_frame`
cuts out the lines of one month as one row per line with every header column kept as text, so
the original lines can be rebuilt exactly and nothing is lost before parsing.

Placement rule (`month_of_lines`): a line belongs to the month of its own Date only when that
Date places it (`timestamp_places_line`): a real `YYYY-MM-DD HH:MM:SS` on a whole minute (seconds
`00`), in the year of the file name, and not before the first partition (`DATA_FIRST_MONTH`).
Every other line goes with its neighbours, like a broken line, and is quarantined in that month
with the reason `timestamp_problem` gives. A file in which no line is placed cannot be loaded at
all: `read_source_lines` raises `SourceError` naming its first data line.
"""

import mmap
import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from bangkok_pipeline.core.settings import DATA_FIRST_MONTH
from bangkok_pipeline.source.layout import DATE_COLUMN, TIMESTAMP_FORMAT, parse_file_name
from bangkok_pipeline.transform.validation import INVALID_TIMESTAMP, OUTSIDE_PARTITION

RAW_LINE = "raw_line"
INCOMPLETE = "incomplete"
LINE_NO = "line_no"
RESERVED_COLUMNS = frozenset({LINE_NO, RAW_LINE, INCOMPLETE})

_BOM = b"\xef\xbb\xbf"
# Bytes tried, in order, as a CSV separator that splits nothing: the whole line is one field.
_NO_SPLIT_SEPARATORS = (b"\x1f", b"\x1e", b"\x1d", b"\x1c", b"\x01")
_BINARY_PROBE = 64 * 1024
_HEADER_LIMIT = 1 << 20  # bytes of a header line: CU-BEMS headers are about 3 kB
# The format never quotes; quotes, control characters (tab aside) and bytes that are not UTF-8
# (decoded to U+FFFD) mean a line is not plain CSV text and cannot be split faithfully on ','.
NOT_PLAIN_TEXT = r"[\x00-\x08\x0A-\x1F\x7F\x22\x{FFFD}]"
TIMESTAMP_SHAPE = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:[0-5]\d$"
EXPECTED_TIMESTAMP = "YYYY-MM-DD HH:MM:SS"
_QUOTED_CHARACTERS = 60  # of a line quoted in an error message


class SourceError(ValueError):
    """A source file that cannot be read as a CU-BEMS CSV at all (not a per-line problem)."""


@dataclass(frozen=True, eq=False)
class SourceText:
    """Every line of one source file, decoded, with what was stripped recorded as flags.

    `lines` has one row per data line: `line_no` (Int64, physical, header = 1), `line` (String,
    without line ending) and `month` (`YYYY-MM` from `month_of_lines`; never null: a file in
    which no line is placed is refused by `read_source_lines`). `year` is the file name's year
    (None for a name that is not `{year}Floor{n}.csv`: then any year places a line).
    """

    path: Path
    header: tuple[str, ...]
    lines: pl.DataFrame
    bom: bool
    crlf: bool
    incomplete_last_line: bool
    year: int | None = None

    @property
    def name(self) -> str:
        return self.path.name

    def months(self) -> list[str]:
        """The months that have at least one line, in order."""
        return self.lines.get_column("month").drop_nulls().unique().sort().to_list()

    def lines_by_month(self) -> dict[str, int]:
        """Data lines per month, in order."""
        counts = self.lines.group_by("month").len().drop_nulls("month").sort("month")
        return dict(counts.iter_rows())


def _free_separator(path: Path) -> str | None:
    """A byte that does not occur in the file, so that the CSV reader yields whole lines."""
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        for candidate in _NO_SPLIT_SEPARATORS:
            if mm.find(candidate) == -1:
                return candidate.decode()
    return None


def _read_lines(path: Path, separator: str | None, lossy: bool) -> pl.Series:
    """Each physical line as one string; polars drops '\\n', one '\\r' before it and the BOM."""
    if separator is None:  # every candidate byte occurs somewhere: slow but exact
        text = path.read_bytes().removeprefix(_BOM).decode("utf-8", errors="replace")
        parts = text.split("\n")
        if parts and parts[-1] == "":
            parts.pop()
        return pl.Series("line", [p.removesuffix("\r") for p in parts], dtype=pl.String)
    frame = pl.read_csv(
        path,
        has_header=False,
        separator=separator,
        quote_char=None,
        schema={"line": pl.String},
        encoding="utf8-lossy" if lossy else "utf8",
        raise_if_empty=False,
    )
    return frame.get_column("line").fill_null("")


def _all_lines(path: Path) -> pl.Series:
    try:  # the common case, one pass in Rust
        return _read_lines(path, _NO_SPLIT_SEPARATORS[0].decode(), lossy=False)
    except pl.exceptions.ComputeError:
        # The separator byte occurs in a line, or some bytes are not UTF-8: pick a byte that is
        # absent and decode lossily; lines with U+FFFD then count as not plain text.
        return _read_lines(path, _free_separator(path), lossy=True)


def read_source_lines(path: Path) -> SourceText:
    """Read a whole source file at once (polars' CSV reader does the line splitting in Rust).

    Raises `SourceError` naming the file (and line 1 for header problems) for an empty file,
    binary or non-UTF-8 content, a header that does not start with `Date` or has an unnamed
    column, and for data lines of which not one has a Date that places it (see the module
    docstring): such a file is in another timestamp format or of another year as a whole.
    """
    path = Path(path)
    with path.open("rb") as handle:
        head = handle.read(_BINARY_PROBE)
        _check_text(path.name, head)
        handle.seek(-1, os.SEEK_END)
        incomplete = handle.read(1) != b"\n"
    first_end = head.find(b"\n")
    crlf = first_end > 0 and head[first_end - 1 : first_end] == b"\r"
    lines = _all_lines(path)
    if lines.is_empty() or (lines.len() == 1 and not lines[0].strip()):
        raise SourceError(f"{path.name}: empty file, expected a header line starting 'Date'")
    header = _header(path.name, lines[0])
    data = pl.DataFrame(
        {LINE_NO: pl.int_range(2, lines.len() + 1, dtype=pl.Int64, eager=True), "line": lines[1:]}
    )
    incomplete = incomplete and data.height > 0
    named = parse_file_name(path.name)
    year = named.year if named else None
    data = data.with_columns(month=month_of_lines(data, incomplete, year))
    if data.height and data.get_column("month").null_count() == data.height:
        raise SourceError(_nothing_placed(path.name, data, year))
    return SourceText(path, header, data, head.startswith(_BOM), crlf, incomplete, year)


def read_header(path: Path) -> tuple[str, ...]:
    """The columns of a source file's header, reading its first line only; `SourceError` for the
    header problems `read_source_lines` refuses."""
    path = Path(path)
    with path.open("rb") as handle:
        first = handle.readline(_HEADER_LIMIT + 1)
    _check_text(path.name, first.strip())
    if len(first) > _HEADER_LIMIT:
        raise SourceError(f"{path.name} line 1: longer than {_HEADER_LIMIT:,} bytes, not a header")
    text = first.removeprefix(_BOM).decode("utf-8", errors="replace").rstrip("\r\n")
    return _header(path.name, text)


def _check_text(name: str, head: bytes) -> None:
    """Refuse a file whose first bytes are nothing or not text."""
    if not head:
        raise SourceError(f"{name}: empty file, expected a header line starting 'Date'")
    if b"\x00" in head:
        raise SourceError(f"{name}: binary content (NUL bytes), not a CSV text file")


def _nothing_placed(name: str, data: pl.DataFrame, year: int | None) -> str:
    """One line: the file, its first data line (number, text, what is wrong), what is expected."""
    line_no, text = data.row(0)[:2]
    date = pl.col("line").str.extract(r"^([^,]*)", 1)
    _, problem = timestamp_problem(date, name)
    why = pl.DataFrame({"line": [text]}).select(problem).item()
    quoted = text if len(text) <= _QUOTED_CHARACTERS else text[:_QUOTED_CHARACTERS] + "…"
    where = f"in {year}, " if year is not None else ""
    return (
        f"{name}: none of its {data.height:,} data lines has a Date that places it in a month, "
        f"so nothing of it can be loaded; line {line_no}: {quoted!r}"
        f"{f' ({why})' if why else ''}; expected Date as {EXPECTED_TIMESTAMP} on a whole "
        f"minute, {where}from {DATA_FIRST_MONTH} on"
    )


def _header(name: str, line: str) -> tuple[str, ...]:
    if "\ufffd" in line:
        raise SourceError(f"{name} line 1: not UTF-8 text, expected a CSV header starting 'Date'")
    fields = tuple(line.split(","))
    if fields[0] != DATE_COLUMN:
        raise SourceError(
            f"{name} line 1: expected first column {DATE_COLUMN!r}, found {fields[0][:40]!r}"
        )
    if pl.select(pl.lit(line).str.contains(NOT_PLAIN_TEXT)).item():
        raise SourceError(f"{name} line 1: header has quotes or control characters: {line!r}")
    seen: set[str] = set()
    for number, field in enumerate(fields, start=1):
        if not field:
            trailing = " (the header ends with ',')" if number == len(fields) else ""
            raise SourceError(
                f"{name} line 1: column {number} has no name{trailing}; every column needs a "
                "name such as z1_Light(kW): remove the empty column"
            )
        if field in seen:
            raise SourceError(f"{name} line 1: column {field!r} appears twice")
        if field in RESERVED_COLUMNS:
            raise SourceError(f"{name} line 1: column name {field!r} is reserved by the loader")
        seen.add(field)
    return fields


def timestamp_text_valid(text: pl.Expr) -> pl.Expr:
    """True where `text` is exactly `YYYY-MM-DD HH:MM:SS` and a real time (no leap seconds)."""
    parsed = text.str.strptime(pl.Datetime("us"), TIMESTAMP_FORMAT, strict=False)
    return text.str.contains(TIMESTAMP_SHAPE) & parsed.is_not_null()


def timestamp_places_line(
    date: pl.Expr, year: int | None, first_month: str = DATA_FIRST_MONTH
) -> pl.Expr:
    """True where a Date text places its line in its own month: a real `YYYY-MM-DD HH:MM:SS`
    on a whole minute (readings are one a minute: seconds `00`), in `year` (the file name's;
    None: any) and not before `first_month`, the first partition.

    A line dated after the last partition (`settings.last_month()`) but in the file's year is
    placed too: it waits, reported, for the partitions to be extended (CUBEMS_LAST_MONTH).
    """
    placed = (
        timestamp_text_valid(date)
        & (date.str.slice(17, 2) == "00")
        & (date.str.slice(0, 7) >= first_month)
    )
    return placed if year is None else placed & (date.str.slice(0, 4) == f"{year:04d}")


def timestamp_problem(
    date: pl.Expr, source_file: str, first_month: str = DATA_FIRST_MONTH
) -> tuple[pl.Expr, pl.Expr]:
    """(reason, detail) for a Date text that does not place its line; both null where it does.

    `invalid_timestamp`: not a real `YYYY-MM-DD HH:MM:SS`, or seconds other than `00`;
    `outside_partition`: a valid minute in another year than the file name's, or before the
    first partition. The year comes from `source_file` (`{year}Floor{n}.csv`; else any year).
    """
    named = parse_file_name(source_file)
    malformed = ~timestamp_text_valid(date)
    off_minute = date.str.slice(17, 2) != "00"
    other_year = date.str.slice(0, 4) != f"{named.year:04d}" if named is not None else pl.lit(False)
    early = date.str.slice(0, 7) < first_month
    reason = (
        pl.when(malformed | off_minute)
        .then(pl.lit(INVALID_TIMESTAMP))
        .when(other_year | early)
        .then(pl.lit(OUTSIDE_PARTITION))
    )
    detail = (
        pl.when(malformed)
        .then(pl.format("Date '{}' is not a timestamp {}", date, pl.lit(EXPECTED_TIMESTAMP)))
        .when(off_minute)
        .then(
            pl.format(
                "Date '{}' is not on a whole minute: readings are one a minute, seconds must be 00",
                date,
            )
        )
        .when(other_year)
        .then(
            pl.format(
                "Date {} is not in {}, the year of {}",
                date,
                pl.lit(named.year if named else 0),
                pl.lit(source_file),
            )
        )
        .when(early)
        .then(pl.format("Date {} is before the first partition {}", date, pl.lit(first_month)))
    )
    return reason, detail


def month_of_lines(
    lines: pl.DataFrame,
    incomplete_last_line: bool = False,
    year: int | None = None,
    first_month: str = DATA_FIRST_MONTH,
) -> pl.Series:
    """`YYYY-MM` for each line: its own Date's month when that Date places the line
    (`timestamp_places_line`), else the month of the nearest placed line.

    Forward fill first (a broken or misdated line belongs with what precedes it), then backward
    fill for such lines at the top of the file. An unfinished last line is placed like a broken
    one, whatever its Date says: where a half-written line lands must not depend on where it was
    cut (the generator's manifest counts it in the month of the line before). Null only when no
    line is placed.
    """
    line = pl.col("line")
    date = line.str.slice(0, 19)  # a valid Date is exactly 19 characters, then ',' or the end
    valid = line.str.slice(19, 1).is_in([",", ""]) & timestamp_places_line(date, year, first_month)
    own = lines.select(pl.when(valid).then(date.str.slice(0, 7)).alias("month")).to_series()
    if not incomplete_last_line or own.is_empty():
        return own.forward_fill().backward_fill()
    placed = own.clone().scatter(own.len() - 1, None)
    return placed.forward_fill().backward_fill().fill_null(own)


def raw_month_frame(source: SourceText, month: str) -> pl.DataFrame:
    """The lossless raw layer of one file-month: one row per data line of that month.

    Columns: `line_no`; every header column as String, in header order (an empty field is "",
    null means the line could not be split); `raw_line`, the original text of lines that could
    not be split cleanly (wrong field count, not plain text) or are the unfinished last line,
    null otherwise; `incomplete`, true for the last line of a file without a final newline.
    Rebuild a line with `raw_line` if set, else by joining the header columns with ','.
    """
    header = list(source.header)
    last_line_no = source.lines.height + 1
    line = pl.col("line")
    flagged = source.lines.filter(pl.col("month") == month).select(
        LINE_NO,
        "line",
        (
            (line.str.count_matches(",", literal=True) == len(header) - 1)
            & ~line.str.contains(NOT_PLAIN_TEXT)
        ).alias("_clean"),
        (pl.lit(source.incomplete_last_line) & (pl.col(LINE_NO) == last_line_no)).alias(INCOMPLETE),
    )
    clean = pl.col("_clean")
    fields = pl.when(clean).then(line).str.splitn(",", len(header)).struct.rename_fields(header)
    return flagged.select(
        LINE_NO,
        fields.alias("_fields"),
        pl.when(~clean | pl.col(INCOMPLETE)).then(line).alias(RAW_LINE),
        INCOMPLETE,
    ).unnest("_fields")
