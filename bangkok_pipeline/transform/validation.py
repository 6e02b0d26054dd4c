"""What a valid reading is, once, and how readings that are not become quarantine records.

Grain: one long reading (timestamp, sensor, value) of one file-month. `ReadingModel` is the single
definition of validity; `validate_readings` runs it on a collected frame and turns every failure
into a quarantine row naming file, line, column and reason, so nothing is dropped silently.
The quarantine vocabulary and frame layout live here too, shared by `readings.py`.
"""

from collections.abc import Mapping
from functools import cache
from typing import NamedTuple

import numpy as np
import pandera.polars as pa
import polars as pl
from pandera.engines import polars_engine
from pandera.errors import SchemaErrors

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.core.settings import BANGKOK_TZ
from bangkok_pipeline.source.layout import ChannelKind

UNPARSEABLE_ROW = "unparseable_row"
INVALID_TIMESTAMP = "invalid_timestamp"
INVALID_NUMBER = "invalid_number"
OUT_OF_RANGE = "out_of_range"
CONFLICTING_DUPLICATE = "conflicting_duplicate"
INCOMPLETE_LAST_LINE = "incomplete_last_line"
# A source line dated in another year than its file, or before the first partition (`source`);
# from `ReadingModel` (a reading outside its partition month) it means a bug upstream.
OUTSIDE_PARTITION = "outside_partition"
# Defensive: means a bug upstream of validation, not a defect of the source file.
DUPLICATE_READING = "duplicate_reading"
REASONS = (
    UNPARSEABLE_ROW,
    INVALID_TIMESTAMP,
    INVALID_NUMBER,
    OUT_OF_RANGE,
    CONFLICTING_DUPLICATE,
    INCOMPLETE_LAST_LINE,
    OUTSIDE_PARTITION,
    DUPLICATE_READING,
)

TIME_ZONE = BANGKOK_TZ.key
TS_DTYPE = pl.Datetime("us", TIME_ZONE)
# A valid reading as the validated layer and the archive store it: the value as float4, exactly
# as the database holds it.
VALID_READINGS_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "ts": TS_DTYPE,
    "sensor_id": pl.Int32,
    "value": pl.Float32,
}

QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "source_file": pl.String(),
    "line_no": pl.Int64(),
    "column_name": pl.String(),
    "raw_text": pl.String(),
    "reason": pl.String(),
    "detail": pl.String(),
    "month": pl.String(),
}


def empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema=QUARANTINE_SCHEMA)


class PlausibleRange(NamedTuple):
    low: float
    high: float
    unit: str


# Inclusive bounds per channel kind; a reading outside is quarantined as `out_of_range`.
PLAUSIBLE_RANGES: dict[ChannelKind, PlausibleRange] = {
    "ac": PlausibleRange(0.0, 100.0, "kW"),
    "light": PlausibleRange(0.0, 100.0, "kW"),
    "plug": PlausibleRange(0.0, 100.0, "kW"),
    "temperature": PlausibleRange(10.0, 45.0, "degC"),
    "humidity": PlausibleRange(0.0, 100.0, "RH%"),
    "illuminance": PlausibleRange(0.0, 5000.0, "lux"),
}
KINDS: tuple[str, ...] = tuple(PLAUSIBLE_RANGES)
KIND_DTYPE = pl.Enum(KINDS)


def _per_kind(values: list[float]) -> pl.Expr:
    """`values[kind]` for each row: a gather by the Enum's code, no hashing of 1 M strings."""
    return pl.lit(pl.Series(values, dtype=pl.Float64)).gather(pl.col("kind").to_physical())


def in_plausible_range() -> pl.Expr:
    """True where `value` lies within the inclusive range of the row's `kind` (an Enum)."""
    low = _per_kind([r.low for r in PLAUSIBLE_RANGES.values()])
    high = _per_kind([r.high for r in PLAUSIBLE_RANGES.values()])
    return pl.col("value").is_between(low, high)


def unique_sensor_ts(frame: pl.DataFrame) -> pl.Series:
    """True where no other row has the same (sensor_id, ts).

    Sort-based (numpy lexsort): on a floor-month this takes ~25 ms and ~30 MB, where pandera's
    `Config.unique` (a hash over both columns) took ~0.6 s and ~250 MB of peak memory.
    """
    ts = frame.get_column("ts").dt.epoch("us").fill_null(0).to_numpy()
    sensor = frame.get_column("sensor_id").fill_null(0).to_numpy()
    order = np.lexsort((ts, sensor))
    ts, sensor = ts[order], sensor[order]
    same_as_next = (ts[1:] == ts[:-1]) & (sensor[1:] == sensor[:-1])
    repeated = np.zeros(len(order), dtype=bool)
    repeated[1:] |= same_as_next
    repeated[:-1] |= same_as_next
    unique = np.empty(len(order), dtype=bool)
    unique[order] = ~repeated
    return pl.Series("unique", unique)


class ReadingModel(pa.DataFrameModel):
    """A valid reading: a finite value of a known kind within its plausible range, at a
    Bangkok-local time on a whole minute inside the partition month, at most once per
    (sensor_id, ts).

    Whole minute: readings are one a minute and the aggregates count at most 60 per sensor and
    hour (a database CHECK); the source layer already quarantines a Date with seconds other than
    00, so `ts_on_whole_minute` failing here means a bug upstream, caught before the database.

    The month comes from `Config.metadata`; `ReadingModel.for_month("2018-07")` binds it (on the
    bare model the month check is vacuous). The plausible-range and uniqueness checks read a
    second column but are declared on `value` and `sensor_id`: pandera hands column checks the
    whole frame, and a column check reports failures as single values, whereas a frame-wide check
    turns every failing row into a Python dict (1.4 M failing rows: 8 s and 1.7 GB).
    For the same reason uniqueness is `unique_sensor_ts`, not `Config.unique`.
    """

    ts: polars_engine.DateTime = pa.Field(
        nullable=False, dtype_kwargs={"time_unit": "us", "time_zone": TIME_ZONE}
    )
    sensor_id: pl.Int32 = pa.Field(nullable=False, gt=0)
    value: pl.Float64 = pa.Field(nullable=False)
    kind: polars_engine.Enum = pa.Field(nullable=False, dtype_kwargs={"categories": list(KINDS)})

    class Config:
        strict = True
        metadata: dict[str, str | None] = {"month": None}

    @classmethod
    def for_month(cls, month: str) -> type["ReadingModel"]:
        """The model bound to one partition month (`YYYY-MM`), built once per month."""
        return _month_model(month)

    @pa.check("ts", name="ts_on_whole_minute")
    def ts_on_whole_minute(cls, data: pa.PolarsData) -> pl.LazyFrame:
        # On the UTC epoch: Bangkok's offset (+07:00) is whole minutes, and this skips a local-time
        # conversion that costs ~30x more (0.5 s a month)
        return data.lazyframe.select(pl.col(data.key).dt.epoch("us") % 60_000_000 == 0)

    @pa.check("ts", name="ts_in_partition_month")
    def ts_in_partition_month(cls, data: pa.PolarsData) -> pl.LazyFrame:
        month = (cls.Config.metadata or {}).get("month")
        if month is None:
            return data.lazyframe.select(pl.repeat(True, pl.len()))
        start, end = Month.parse(month).bounds
        return data.lazyframe.select(pl.col(data.key).is_between(start, end, closed="left"))

    @pa.check("sensor_id", name="one_reading_per_sensor_and_ts")
    def one_reading_per_sensor_and_ts(cls, data: pa.PolarsData) -> pl.LazyFrame:
        pairs = data.lazyframe.select("sensor_id", "ts").collect()
        return unique_sensor_ts(pairs).to_frame().lazy()

    @pa.check("value", name="value_is_finite")
    def value_is_finite(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(data.key).is_finite())

    @pa.check("value", name="value_in_plausible_range")
    def value_in_plausible_range(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(in_plausible_range())


@cache
def _month_model(month: str) -> type[ReadingModel]:
    Month.parse(month)  # refuses what is not a month

    class Config(ReadingModel.Config):
        metadata = {"month": month}

    name = f"ReadingModel_{month.replace('-', '_')}"
    return type(name, (ReadingModel,), {"Config": Config, "__module__": __name__})


# Pandera failure (column, or "*" for frame-wide checks; check name) -> quarantine reason, in
# order of precedence when a row fails several. Any other failure is a bug, not bad data: raised.
_REASON_BY_FAILURE: dict[tuple[str, str], str] = {
    ("ts", "ts_in_partition_month"): OUTSIDE_PARTITION,
    ("ts", "ts_on_whole_minute"): INVALID_TIMESTAMP,
    ("sensor_id", "one_reading_per_sensor_and_ts"): DUPLICATE_READING,
    ("value", "value_is_finite"): INVALID_NUMBER,
    ("value", "not_nullable"): INVALID_NUMBER,
    ("value", "value_in_plausible_range"): OUT_OF_RANGE,
}
_RANK = {reason: rank for rank, reason in enumerate(dict.fromkeys(_REASON_BY_FAILURE.values()))}


class ReadingModelError(ValueError):
    """Validation failed in a way no source data can cause (wrong dtype, unknown kind, ...)."""


def validate_readings(
    readings: pl.DataFrame, kinds: Mapping[int, str], month: str, source_file: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split long readings of one file-month into (valid ts/sensor_id/value, quarantine).

    `readings` needs ts, sensor_id, value and line_no; `column_name` and `value_text` (as
    `readings.long_readings` provides them) make quarantine rows name the cell and keep its text.
    `kinds` maps every sensor id to its channel kind.
    """
    frame = readings.select("ts", "sensor_id", "value").with_columns(
        kind=pl.lit(_kind_table(kinds, readings, source_file)).gather(pl.col("sensor_id"))
    )
    model = ReadingModel.for_month(month)
    try:
        model.validate(frame, lazy=True)
    except SchemaErrors as errors:
        failed = _failed_rows(errors, source_file)
    else:
        return frame.drop("kind"), empty_quarantine()
    keep = np.ones(frame.height, dtype=bool)
    keep[failed.get_column("index").to_numpy()] = False
    valid = frame.filter(pl.Series(keep)).drop("kind")
    return valid, _quarantine(readings, frame, failed, month, source_file)


def _kind_table(kinds: Mapping[int, str], readings: pl.DataFrame, source_file: str) -> pl.Series:
    """Kind by sensor id as a lookup table (index = id), checked to cover every id present."""
    ids = set(readings.get_column("sensor_id").drop_nulls().unique().to_list())
    missing = sorted(i for i in ids if i not in kinds or i <= 0)
    unknown = sorted({k for k in kinds.values() if k not in KINDS})
    if missing or unknown:
        raise ReadingModelError(
            f"{source_file}: sensor ids without a kind: {missing[:10]}; unknown kinds: {unknown}"
        )
    table: list[str | None] = [None] * (max(ids, default=0) + 1)
    for sensor_id in ids:
        table[sensor_id] = kinds[sensor_id]
    return pl.Series("kind", table, dtype=KIND_DTYPE)


def _failed_rows(errors: SchemaErrors, source_file: str) -> pl.DataFrame:
    """One row per failing reading: its row index and the reason that takes precedence."""
    cases = errors.failure_cases.select(
        pl.col("index").cast(pl.Int64),
        pl.concat_str(
            pl.when(pl.col("schema_context") == "Column")
            .then(pl.col("column"))
            .otherwise(pl.lit("*")),
            pl.col("check").cast(pl.String),
            separator="/",
        ).alias("failure"),
    )
    reasons = {
        f"{column}/{check}": reason for (column, check), reason in _REASON_BY_FAILURE.items()
    }
    unknown = (
        cases.filter(~pl.col("failure").is_in(list(reasons)) | pl.col("index").is_null())
        .get_column("failure")
        .unique()
    )
    if unknown.len():
        raise ReadingModelError(
            f"{source_file}: readings failed checks that no source data can fail "
            f"(a bug upstream): {sorted(unknown.head(10).to_list())}"
        ) from errors
    return (
        cases.select("index", pl.col("failure").replace_strict(reasons).alias("reason"))
        .with_columns(rank=pl.col("reason").replace_strict(_RANK, return_dtype=pl.Int8))
        .sort("index", "rank")
        .unique("index", keep="first", maintain_order=True)
        .drop("rank")
    )


def _quarantine(
    readings: pl.DataFrame,
    frame: pl.DataFrame,
    failed: pl.DataFrame,
    month: str,
    source_file: str,
) -> pl.DataFrame:
    indices = failed.get_column("index")
    rows = (
        readings[indices]
        .rechunk()
        .with_columns(kind=frame.get_column("kind")[indices], reason=failed.get_column("reason"))
    )
    if "column_name" not in rows.columns:
        rows = rows.with_columns(column_name=pl.lit(None, pl.String))
    if "value_text" not in rows.columns:
        rows = rows.with_columns(value_text=pl.col("value").cast(pl.String))
    ts_text = pl.col("ts").dt.strftime("%Y-%m-%d %H:%M:%S%.f")
    where = pl.format(
        "{} line {} column {}: ",
        pl.lit(source_file),
        pl.col("line_no"),
        pl.col("column_name").fill_null(pl.format("sensor {}", pl.col("sensor_id"))),
    )
    quoted = pl.format("'{}'", pl.col("value_text"))
    low = _per_kind([r.low for r in PLAUSIBLE_RANGES.values()])
    high = _per_kind([r.high for r in PLAUSIBLE_RANGES.values()])
    unit = pl.col("kind").replace_strict(
        {k: r.unit for k, r in PLAUSIBLE_RANGES.items()}, return_dtype=pl.String
    )
    detail = (
        pl.when(pl.col("reason") == OUT_OF_RANGE)
        .then(
            pl.format(
                "{} is outside the plausible range {}..{} {} for {}",
                quoted,
                low,
                high,
                unit,
                pl.col("kind"),
            )
        )
        .when(pl.col("reason") == INVALID_TIMESTAMP)
        .then(
            pl.format("timestamp {} is not on a whole minute: readings are one a minute", ts_text)
        )
        .when(pl.col("reason") == OUTSIDE_PARTITION)
        .then(pl.format("timestamp {} is outside the partition month {}", ts_text, pl.lit(month)))
        .when(pl.col("reason") == DUPLICATE_READING)
        .then(pl.format("another reading of this sensor at {} survived deduplication", ts_text))
        .otherwise(pl.format("{} is not a finite number", quoted))
    )
    return rows.select(
        pl.lit(source_file).alias("source_file"),
        pl.col("line_no").cast(pl.Int64),
        pl.col("column_name").cast(pl.String),
        pl.col("value_text").cast(pl.String).alias("raw_text"),
        "reason",
        pl.concat_str(where, detail).alias("detail"),
        pl.lit(month).alias("month"),
    ).cast(QUARANTINE_SCHEMA)  # type: ignore[arg-type]  # polars stub: Mapping key invariant
