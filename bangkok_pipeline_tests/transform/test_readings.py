"""Wide raw lines -> long readings: matching by column name, quarantine reasons, duplicates."""

from datetime import datetime
from pathlib import Path

import polars as pl

from bangkok_pipeline.core.settings import BANGKOK_TZ
from bangkok_pipeline.source.files import raw_month_frame, read_source_lines
from bangkok_pipeline.source.layout import parse_column
from bangkok_pipeline.transform.readings import LongResult, long_readings
from bangkok_pipeline.transform.validation import QUARANTINE_SCHEMA

FILE = "2018Floor2.csv"
IDS = {"z1_Light(kW)": 11, "z1_Plug(kW)": 12, "z1_S1(degC)": 13}


def load(tmp_path: Path, lines: list[str], final_newline: bool = True) -> LongResult:
    """Write a file, read it and turn its July lines into long readings."""
    path = tmp_path / FILE
    path.write_text("\n".join(lines) + ("\n" if final_newline else ""))
    source = read_source_lines(path)
    ids = {c: IDS[c] for c in source.header[1:] if parse_column(2, c) is not None}
    return long_readings(raw_month_frame(source, "2018-07"), FILE, 2, "2018-07", ids)


def readings(result: LongResult) -> list[tuple[str, int, float, int]]:
    frame = result.readings.sort("sensor_id", "ts")
    return [
        (ts.strftime("%d %H:%M"), sensor, value, line)
        for ts, sensor, value, line in frame.select("ts", "sensor_id", "value", "line_no").rows()
    ]


def quarantined(result: LongResult) -> list[tuple[int, str | None, str, str]]:
    frame = result.quarantine.sort("line_no", "column_name", nulls_last=True)
    return frame.select("line_no", "column_name", "raw_text", "reason").rows()


def test_readings_are_typed_and_in_bangkok_time(tmp_path: Path) -> None:
    result = load(tmp_path, ["Date,z1_Light(kW)", "2018-07-01 00:00:00,1.5"])
    assert result.readings.schema["ts"] == pl.Datetime("us", "Asia/Bangkok")
    assert result.readings.schema["sensor_id"] == pl.Int32
    assert result.readings.schema["value"] == pl.Float64
    assert result.readings.schema["line_no"] == pl.Int64
    assert result.readings.row(0)[:3] == (datetime(2018, 7, 1, tzinfo=BANGKOK_TZ), 11, 1.5)
    assert dict(result.quarantine.schema) == QUARANTINE_SCHEMA
    assert (result.lines, result.cells, result.empty_cells) == (1, 1, 0)


def test_columns_in_another_order_give_the_same_readings(tmp_path: Path) -> None:
    published = load(
        tmp_path,
        [
            "Date,z1_Light(kW),z1_Plug(kW),z1_S1(degC)",
            "2018-07-01 00:00:00,1.5,2.5,27.5",
            "2018-07-01 00:01:00,1.6,,27.6",
        ],
    )
    shuffled = load(
        tmp_path,
        [
            "Date,z1_S1(degC),z1_Light(kW),z1_Plug(kW)",
            "2018-07-01 00:00:00,27.5,1.5,2.5",
            "2018-07-01 00:01:00,27.6,1.6,",
        ],
    )
    assert readings(shuffled) == readings(published)
    assert len(readings(published)) == 5


def test_unknown_column_produces_no_readings(tmp_path: Path) -> None:
    result = load(tmp_path, ["Date,z1_Light(kW),z2_CO2(ppm)", "2018-07-01 00:00:00,1.5,415"])
    assert readings(result) == [("01 00:00", 11, 1.5, 2)]
    assert result.cells == 1
    assert result.quarantine.is_empty()


def test_empty_cells_are_missing_not_quarantined(tmp_path: Path) -> None:
    result = load(
        tmp_path,
        ["Date,z1_Light(kW),z1_Plug(kW)", "2018-07-01 00:00:00,,", "2018-07-01 00:01:00,,2"],
    )
    assert readings(result) == [("01 00:01", 12, 2.0, 3)]
    assert (result.cells, result.empty_cells) == (4, 3)
    assert result.quarantine.is_empty()


def test_each_line_and_cell_reason_names_line_column_and_text(tmp_path: Path) -> None:
    lines = [
        "Date,z1_Light(kW),z1_Plug(kW)",
        "2018-07-01 00:00:00,1.5,2.5",
        "ERR,timeout",
        "2018-07-01 25:61:00,1.5,2.5",
        "2018-07-01 00:02:00,ERR,inf",
        "2018-07-01 00:03:00,1..2,NaN",
        "2018-07-01 00:04:00,1.5",
    ]
    result = load(tmp_path, lines, final_newline=False)
    assert quarantined(result) == [
        (3, None, "ERR,timeout", "unparseable_row"),
        (4, None, "2018-07-01 25:61:00,1.5,2.5", "invalid_timestamp"),
        (5, "z1_Light(kW)", "ERR", "invalid_number"),
        (5, "z1_Plug(kW)", "inf", "invalid_number"),
        (6, "z1_Light(kW)", "1..2", "invalid_number"),
        (6, "z1_Plug(kW)", "NaN", "invalid_number"),
        (7, None, "2018-07-01 00:04:00,1.5", "incomplete_last_line"),
    ]
    assert readings(result) == [("01 00:00", 11, 1.5, 2), ("01 00:00", 12, 2.5, 2)]
    details = dict(zip(result.quarantine["reason"], result.quarantine["detail"], strict=False))
    assert details["unparseable_row"] == f"{FILE} line 3: 2 fields, expected 3 as in the header"
    assert details["invalid_timestamp"] == (
        f"{FILE} line 4: Date '2018-07-01 25:61:00' is not a timestamp YYYY-MM-DD HH:MM:SS"
    )
    assert details["incomplete_last_line"].startswith(f"{FILE} line 7: last line has no")
    invalid = result.quarantine.filter(pl.col("raw_text") == "ERR").row(0, named=True)
    assert invalid["detail"] == f"{FILE} line 5 column z1_Light(kW): 'ERR' is not a finite number"
    assert set(result.quarantine["month"]) == {"2018-07"}
    assert set(result.quarantine["source_file"]) == {FILE}


def test_identical_duplicate_collapses_and_is_counted(tmp_path: Path) -> None:
    result = load(
        tmp_path,
        [
            "Date,z1_Light(kW),z1_Plug(kW)",
            "2018-07-01 00:00:00,1.5,2.5",
            "2018-07-01 00:00:00,1.50,2.5",
            "2018-07-01 00:01:00,1.6,2.6",
        ],
    )
    assert readings(result) == [
        ("01 00:00", 11, 1.5, 3),
        ("01 00:01", 11, 1.6, 4),
        ("01 00:00", 12, 2.5, 3),
        ("01 00:01", 12, 2.6, 4),
    ]
    assert (result.identical_duplicates, result.identical_duplicate_lines) == (2, 1)
    assert result.quarantine.is_empty()


def test_conflicting_duplicate_keeps_the_last_line_and_quarantines_earlier(
    tmp_path: Path,
) -> None:
    result = load(
        tmp_path,
        [
            "Date,z1_Light(kW),z1_Plug(kW)",
            "2018-07-01 00:00:00,1.5,2.5",
            "2018-07-01 00:01:00,1.6,2.6",
            "2018-07-01 00:00:00,1.7,2.5",
            "2018-07-01 00:00:00,1.8,2.5",
        ],
    )
    assert readings(result) == [
        ("01 00:00", 11, 1.8, 5),
        ("01 00:01", 11, 1.6, 3),
        ("01 00:00", 12, 2.5, 5),
        ("01 00:01", 12, 2.6, 3),
    ]
    assert quarantined(result) == [
        (2, "z1_Light(kW)", "1.5", "conflicting_duplicate"),
        (4, "z1_Light(kW)", "1.7", "conflicting_duplicate"),
    ]
    assert result.quarantine["detail"][0] == (
        f"{FILE} line 2 column z1_Light(kW): '1.5' conflicts with '1.8' on line 5 for "
        "2018-07-01 00:00:00; line 5 is loaded"
    )
    assert (result.identical_duplicates, result.identical_duplicate_lines) == (2, 0)


def test_duplicate_with_an_empty_later_cell_keeps_the_earlier_value(tmp_path: Path) -> None:
    result = load(
        tmp_path,
        ["Date,z1_Light(kW)", "2018-07-01 00:00:00,1.5", "2018-07-01 00:00:00,"],
    )
    assert readings(result) == [("01 00:00", 11, 1.5, 2)]
    assert result.quarantine.is_empty()


def test_header_only_file_gives_an_empty_result(tmp_path: Path) -> None:
    result = load(tmp_path, ["Date,z1_Light(kW)"])
    assert result.readings.is_empty() and result.quarantine.is_empty()
    assert (result.lines, result.cells, result.empty_cells) == (0, 0, 0)
