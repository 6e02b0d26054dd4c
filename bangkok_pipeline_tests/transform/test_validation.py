"""The Pandera reading model and how its failures become quarantine records."""

import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from bangkok_pipeline.core.settings import BANGKOK_TZ
from bangkok_pipeline.source.files import raw_month_frame, read_source_lines
from bangkok_pipeline.transform.readings import long_readings
from bangkok_pipeline.transform.validation import (
    PLAUSIBLE_RANGES,
    QUARANTINE_SCHEMA,
    ReadingModel,
    ReadingModelError,
    validate_readings,
)

FILE = "2018Floor3.csv"
KINDS = {1: "ac", 2: "temperature", 3: "humidity", 4: "illuminance", 5: "light", 6: "plug"}


def frame(rows: list[tuple[datetime, int, float]]) -> pl.DataFrame:
    """Readings as `long_readings` hands them over, minus the cell text."""
    return pl.DataFrame(
        {
            "ts": [ts for ts, _, _ in rows],
            "sensor_id": [sensor for _, sensor, _ in rows],
            "value": [value for _, _, value in rows],
            "line_no": list(range(2, len(rows) + 2)),
        },
        schema={
            "ts": pl.Datetime("us", "Asia/Bangkok"),
            "sensor_id": pl.Int32,
            "value": pl.Float64,
            "line_no": pl.Int64,
        },
    )


def at(day: int, minute: int = 0, month: int = 7) -> datetime:
    return datetime(2018, month, day, 0, minute, tzinfo=BANGKOK_TZ)


def test_plausible_ranges_per_kind() -> None:
    assert {kind: (r.low, r.high) for kind, r in PLAUSIBLE_RANGES.items()} == {
        "ac": (0, 100),
        "light": (0, 100),
        "plug": (0, 100),
        "temperature": (10, 45),
        "humidity": (0, 100),
        "illuminance": (0, 5000),
    }


def test_valid_readings_pass_untouched() -> None:
    readings = frame([(at(1), 1, 0.0), (at(1), 2, 45.0), (at(31, 59), 4, 5000.0)])
    valid, quarantine = validate_readings(readings, KINDS, "2018-07", FILE)
    assert valid.columns == ["ts", "sensor_id", "value"]
    assert valid.equals(readings.drop("line_no"))
    assert quarantine.is_empty()
    assert dict(quarantine.schema) == QUARANTINE_SCHEMA


def test_out_of_range_is_caught_by_the_model_bounds_inclusive() -> None:
    rows = [
        (at(1), 1, 100.0),
        (at(2), 1, 100.01),
        (at(1), 2, 10.0),
        (at(2), 2, 9.99),
        (at(1), 3, -0.5),
        (at(1), 4, 5000.0),
        (at(2), 4, 65535.0),
        (at(1), 6, -5.0),
    ]
    valid, quarantine = validate_readings(frame(rows), KINDS, "2018-07", FILE)
    assert sorted(valid.get_column("value").to_list()) == [10.0, 100.0, 5000.0]
    assert quarantine.sort("line_no").select("line_no", "reason").rows() == [
        (3, "out_of_range"),
        (5, "out_of_range"),
        (6, "out_of_range"),
        (8, "out_of_range"),
        (9, "out_of_range"),
    ]
    record = quarantine.filter(pl.col("line_no") == 5).row(0, named=True)
    assert record["detail"] == (
        f"{FILE} line 5 column sensor 2: '9.99' is outside the plausible range "
        "10.0..45.0 degC for temperature"
    )
    assert record["month"] == "2018-07"


def test_timestamp_outside_the_partition_month_is_caught() -> None:
    rows = [(at(1), 1, 1.0), (at(1, month=8), 1, 1.0), (at(1) - timedelta(seconds=1), 1, 1.0)]
    valid, quarantine = validate_readings(frame(rows), KINDS, "2018-07", FILE)
    assert valid.height == 1
    assert quarantine.sort("line_no").select("line_no", "reason").rows() == [
        (3, "outside_partition"),
        (4, "outside_partition"),
    ]
    assert "outside the partition month 2018-07" in quarantine["detail"][0]


def test_duplicate_pair_and_non_finite_value_are_caught_defensively() -> None:
    rows = [(at(1), 1, 1.0), (at(1), 1, 2.0), (at(2), 1, float("inf")), (at(3), 1, float("nan"))]
    valid, quarantine = validate_readings(frame(rows), KINDS, "2018-07", FILE)
    assert valid.is_empty()
    assert quarantine.sort("line_no").select("line_no", "reason").rows() == [
        (2, "duplicate_reading"),
        (3, "duplicate_reading"),
        (4, "invalid_number"),
        (5, "invalid_number"),
    ]


def test_bugs_upstream_raise_instead_of_quarantining() -> None:
    good = frame([(at(1), 1, 1.0)])
    with pytest.raises(ReadingModelError, match="sensor ids without a kind: \\[1\\]"):
        validate_readings(good, {2: "ac"}, "2018-07", FILE)
    utc = good.with_columns(pl.col("ts").dt.convert_time_zone("UTC"))
    with pytest.raises(ReadingModelError, match="no source data can fail"):
        validate_readings(utc, KINDS, "2018-07", FILE)


def test_empty_readings_validate() -> None:
    valid, quarantine = validate_readings(frame([]), KINDS, "2018-07", FILE)
    assert valid.is_empty() and quarantine.is_empty()


def test_month_models_are_bound_and_reused() -> None:
    july = ReadingModel.for_month("2018-07")
    assert july is ReadingModel.for_month("2018-07")
    assert july.Config.metadata == {"month": "2018-07"}
    assert ReadingModel.Config.metadata == {"month": None}
    ReadingModel.validate(  # the bare model does not check the month
        frame([(at(1, month=9), 1, 1.0)])
        .drop("line_no")
        .with_columns(kind=pl.lit("ac", pl.Enum(list(PLAUSIBLE_RANGES))))
    )


def test_quarantine_quotes_the_cell_text_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / FILE
    path.write_text("Date,z1_AC1(kW),z1_S1(degC)\n2018-07-01 00:00:00,250,27\n")
    source = read_source_lines(path)
    ids = {"z1_AC1(kW)": 1, "z1_S1(degC)": 2}
    long = long_readings(raw_month_frame(source, "2018-07"), FILE, 3, "2018-07", ids)
    valid, quarantine = validate_readings(long.readings, KINDS, "2018-07", FILE)
    assert valid.select("sensor_id", "value").rows() == [(2, 27.0)]
    assert quarantine.select("line_no", "column_name", "raw_text", "reason").rows() == [
        (2, "z1_AC1(kW)", "250", "out_of_range")
    ]
    assert quarantine["detail"][0] == (
        f"{FILE} line 2 column z1_AC1(kW): '250' is outside the plausible range "
        "0.0..100.0 kW for ac"
    )


def test_many_failures_stay_cheap() -> None:
    n = 44_640  # every minute of July: a failing column check costs little, unlike a frame check
    start = datetime(2018, 7, 1, tzinfo=BANGKOK_TZ)
    readings = pl.DataFrame(
        {
            "ts": pl.datetime_range(
                start, start + timedelta(minutes=n - 1), "1m", eager=True, time_zone="Asia/Bangkok"
            ),
            "sensor_id": np.full(n, 2, dtype=np.int32),
            "value": np.full(n, 99.0),
            "line_no": np.arange(2, n + 2, dtype=np.int64),
        }
    )
    began = time.perf_counter()
    valid, quarantine = validate_readings(readings, KINDS, "2018-07", FILE)
    assert time.perf_counter() - began < 5
    assert valid.is_empty()
    assert quarantine.height == n
    assert set(quarantine["reason"]) == {"out_of_range"}
