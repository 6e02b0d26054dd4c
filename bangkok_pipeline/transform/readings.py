"""Wide raw lines of one file-month -> long readings; every line or cell not loaded is quarantined.

Grain: one reading per (sensor, timestamp) of one source file and month. Source: the raw layer of
`source.raw_month_frame`. Target: `LongResult.readings`, which `validation.validate_readings` then
checks against `ReadingModel`; the plausibility of values is validation's business, not this one's.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from bangkok_pipeline.source.files import (
    INCOMPLETE,
    LINE_NO,
    NOT_PLAIN_TEXT,
    RAW_LINE,
    timestamp_problem,
)
from bangkok_pipeline.source.layout import DATE_COLUMN, TIMESTAMP_FORMAT
from bangkok_pipeline.transform.validation import (
    CONFLICTING_DUPLICATE,
    INCOMPLETE_LAST_LINE,
    INVALID_NUMBER,
    QUARANTINE_SCHEMA,
    TIME_ZONE,
    TS_DTYPE,
    UNPARSEABLE_ROW,
    empty_quarantine,
)

READINGS_SCHEMA: dict[str, pl.DataType] = {
    "ts": TS_DTYPE,
    "sensor_id": pl.Int32(),
    "value": pl.Float64(),
    "line_no": pl.Int64(),
    "column_name": pl.Categorical(),
    "value_text": pl.String(),
}
_META = (LINE_NO, RAW_LINE, INCOMPLETE)
_SUPERSEDED = "_superseded"


@dataclass(frozen=True, eq=False)
class LongResult:
    """Long readings of one file-month, what was set aside, and counts for completeness.

    `readings`: ts, sensor_id, value, line_no, plus column_name and value_text so that
    validation can name the cell and quote its text. `lines`: data lines of the month;
    `cells`: sensor cells on lines that split and carry a valid timestamp (empty ones included);
    `empty_cells`: those that were empty (missing readings, not defects);
    `identical_duplicates`: repeated cells dropped because a later line has the same value;
    `identical_duplicate_lines`: lines that only repeat a later line of the same timestamp
    (every non-empty cell equal), the unit the generator's manifest counts.
    """

    readings: pl.DataFrame
    quarantine: pl.DataFrame
    lines: int
    cells: int
    empty_cells: int
    identical_duplicates: int
    identical_duplicate_lines: int = 0


def _records(
    frame: pl.DataFrame,
    source_file: str,
    month: str,
    reason: str | pl.Expr,
    column: pl.Expr,
    raw_text: pl.Expr,
    detail: pl.Expr,
) -> pl.DataFrame:
    """Quarantine rows in `QUARANTINE_SCHEMA`; `detail` gets the '<file> line <n>' prefix."""
    if frame.is_empty():
        return empty_quarantine()
    reason_expr = pl.lit(reason) if isinstance(reason, str) else reason
    # rechunk: polars 2.1 panics in `pl.format` over string columns with empty chunks
    return (
        frame.rechunk()
        .select(
            pl.lit(source_file).alias("source_file"),
            pl.col(LINE_NO).cast(pl.Int64),
            column.cast(pl.String).alias("column_name"),
            raw_text.cast(pl.String).alias("raw_text"),
            reason_expr.alias("reason"),
            pl.format("{} line {}{}", pl.lit(source_file), pl.col(LINE_NO), detail).alias("detail"),
            pl.lit(month).alias("month"),
        )
        .cast(QUARANTINE_SCHEMA)  # type: ignore[arg-type]  # polars stub: Mapping key invariant
    )


def _broken_lines(raw: pl.DataFrame, source_file: str, month: str, width: int) -> pl.DataFrame:
    broken = raw.filter(pl.col(RAW_LINE).is_not_null())
    line = pl.col(RAW_LINE)
    fields = line.str.count_matches(",", literal=True) + 1
    detail = (
        pl.when(pl.col(INCOMPLETE))
        .then(pl.lit(": last line has no trailing newline (file still being written?); not loaded"))
        .when(line.str.contains(NOT_PLAIN_TEXT))
        .then(pl.lit(": not plain CSV text (quote, control character or invalid UTF-8)"))
        .otherwise(pl.format(": {} fields, expected {} as in the header", fields, pl.lit(width)))
    )
    reason = (
        pl.when(pl.col(INCOMPLETE))
        .then(pl.lit(INCOMPLETE_LAST_LINE))
        .otherwise(pl.lit(UNPARSEABLE_ROW))
    )
    return _records(broken, source_file, month, reason, pl.lit(None), line, detail)


def long_readings(
    raw: pl.DataFrame,
    source_file: str,
    floor: int,
    month: str,
    sensor_ids: Mapping[str, int],
) -> LongResult:
    """Unpivot one file-month's raw frame to readings, quarantining what cannot be loaded.

    Columns are matched by name, so their order in the file does not matter; columns missing from
    `sensor_ids` (unknown to the layout) are skipped here and stay only in the raw layer.
    A line whose Date does not place it (`source.timestamp_problem`: not `YYYY-MM-DD HH:MM:SS`,
    seconds other than 00, another year than the file name's, before the first partition) is
    quarantined whole as `invalid_timestamp` or `outside_partition`, with what was expected.
    A (sensor, timestamp) on several lines keeps the last line's value; earlier equal values are
    counted as identical duplicates, earlier different ones quarantined as conflicting.
    `floor` is not needed for parsing; it is accepted so callers pass one file's identity whole.
    """
    header = [name for name in raw.columns if name not in _META]
    sensor_columns = [name for name in header if name in sensor_ids]
    parts = [_broken_lines(raw, source_file, month, len(header))]

    date = pl.col(DATE_COLUMN)
    reason, detail = timestamp_problem(date, source_file)
    split = raw.filter(pl.col(RAW_LINE).is_null()).with_columns(
        reason.alias("_reason"), detail.alias("_detail")
    )
    parts.append(
        _records(
            split.filter(pl.col("_reason").is_not_null()),
            source_file,
            month,
            pl.col("_reason"),
            pl.lit(None),
            pl.concat_str([pl.col(name) for name in header], separator=","),
            pl.format(": {}", pl.col("_detail")),
        )
    )
    timed = split.filter(pl.col("_reason").is_null()).select(
        LINE_NO,
        date.str.strptime(pl.Datetime("us"), TIMESTAMP_FORMAT, strict=False)
        .dt.replace_time_zone(TIME_ZONE)
        .alias("ts"),
        *sensor_columns,
    )
    del split

    empty_cells = int(
        timed.select(pl.sum_horizontal(pl.col(c) == "" for c in sensor_columns).sum()).item()
        if sensor_columns
        else 0
    )
    present = pl.col("value_text") != ""
    finite = pl.col("value").is_finite().fill_null(False)

    # Only lines whose timestamp repeats can hold duplicates: resolve them on that small subset
    # first, so that the long frame of every cell is built once, the losers flagged in it.
    repeated = timed.filter(pl.col("ts").is_duplicated())
    identical = identical_lines = 0
    superseded: dict[str, list[int]] = {}
    if repeated.height:
        candidates = _cells(repeated, sensor_columns, sensor_ids, finite)
        losers, conflicts, identical, identical_lines = _resolve_duplicates(candidates)
        for name, line_nos in losers.group_by("column_name").agg(LINE_NO).iter_rows():
            superseded[name] = line_nos
        ts_text = pl.col("ts").dt.strftime("%Y-%m-%d %H:%M:%S")
        parts.append(
            _records(
                conflicts,
                source_file,
                month,
                CONFLICTING_DUPLICATE,
                pl.col("column_name"),
                pl.col("value_text"),
                pl.format(
                    " column {}: '{}' conflicts with '{}' on line {} for {}; line {} is loaded",
                    pl.col("column_name"),
                    pl.col("value_text"),
                    pl.col("_last_text"),
                    pl.col("_last_line"),
                    ts_text,
                    pl.col("_last_line"),
                ),
            )
        )

    cells = _cells(timed, sensor_columns, sensor_ids, present, superseded)
    parts.append(
        _records(
            cells.filter(~finite),
            source_file,
            month,
            INVALID_NUMBER,
            pl.col("column_name"),
            pl.col("value_text"),
            pl.format(
                " column {}: '{}' is not a finite number",
                pl.col("column_name"),
                pl.col("value_text"),
            ),
        )
    )
    readings = cells.filter(finite & ~pl.col(_SUPERSEDED)).drop(_SUPERSEDED)
    del cells

    return LongResult(
        readings=readings,
        quarantine=pl.concat(parts, how="vertical"),
        lines=raw.height,
        cells=timed.height * len(sensor_columns),
        empty_cells=empty_cells,
        identical_duplicates=identical,
        identical_duplicate_lines=identical_lines,
    )


def _cells(
    timed: pl.DataFrame,
    sensor_columns: list[str],
    sensor_ids: Mapping[str, int],
    keep: pl.Expr,
    superseded: Mapping[str, list[int]] | None = None,
) -> pl.DataFrame:
    """Sensor cells as long rows (`READINGS_SCHEMA`) where `keep` holds; built column by
    column, so no unfiltered wide-to-long intermediate exists. With `superseded` (lines per
    column whose cell a later line replaces), a `_superseded` column flags those cells."""
    if not sensor_columns:
        schema = READINGS_SCHEMA | ({_SUPERSEDED: pl.Boolean()} if superseded is not None else {})
        return pl.DataFrame(schema=schema)
    lazy = timed.lazy()
    per_column = []
    for name in sensor_columns:
        flag = []
        if superseded is not None:
            lines = superseded.get(name)
            flag = [(pl.col(LINE_NO).is_in(lines) if lines else pl.lit(False)).alias(_SUPERSEDED)]
        per_column.append(
            lazy.select(
                "ts",
                pl.lit(sensor_ids[name], pl.Int32).alias("sensor_id"),
                pl.col(name).cast(pl.Float64, strict=False).alias("value"),
                LINE_NO,
                pl.lit(name, pl.Categorical).alias("column_name"),
                pl.col(name).alias("value_text"),
                *flag,
            ).filter(keep)
        )
    # Collected per column and concatenated into one chunk: a 70-chunk frame gets copied again
    # by every later select (validation included).
    return pl.concat([frame.collect() for frame in per_column], how="vertical", rechunk=True)


def _resolve_duplicates(cells: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, int, int]:
    """Cells of lines sharing a timestamp -> (superseded cells, conflicting cells, identical
    cells, identical lines).

    The last line wins: the source most likely corrected itself. An earlier cell equal to the
    winner is a harmless repeat; a different one is a disagreement kept for review.
    """
    key = ["sensor_id", "ts"]
    ranked = cells.sort(LINE_NO).with_columns(
        _last_line=pl.col(LINE_NO).last().over(key),
        _last_value=pl.col("value").last().over(key),
        _last_text=pl.col("value_text").last().over(key),
    )
    superseded = pl.col(LINE_NO) != pl.col("_last_line")
    same = pl.col("value") == pl.col("_last_value")
    losers = ranked.filter(superseded)
    conflicts = losers.filter(~same)
    lines = ranked.group_by(LINE_NO).agg((superseded & same).all().alias("repeat"))
    return (
        losers.select(pl.col("column_name").cast(pl.String), LINE_NO),
        conflicts,
        losers.height - conflicts.height,
        int(lines.get_column("repeat").sum()),
    )
