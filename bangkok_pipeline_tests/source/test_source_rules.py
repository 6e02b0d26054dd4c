"""Issue 9: source cases that used to vanish silently or fail without naming a file.

Each case has an explicit outcome: a file in another timestamp format fails the month naming its
first data line; lines of another year or before the first partition are quarantined in the month
they sit in; seconds other than :00 are quarantined before the database; a header-only file is
reported and its floor counts as 0 %; a floor the building lacks, a year before the first partition
and an unnamed header column are refused naming the file. Small hand-written files, real
PostgreSQL, no mocks.
"""

from datetime import datetime, timedelta
from pathlib import Path

import pandera.errors
import polars as pl
import psycopg
import pytest

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.core.settings import BANGKOK_TZ
from bangkok_pipeline.source.files import (
    SourceError,
    month_of_lines,
    raw_month_frame,
    read_source_lines,
)
from bangkok_pipeline.source.state import read_file_state
from bangkok_pipeline.transform.layers import layer_dir, run_layers
from bangkok_pipeline.transform.readings import long_readings
from bangkok_pipeline.transform.validation import PLAUSIBLE_RANGES, ReadingModel, validate_readings
from bangkok_pipeline.warehouse.ingest import (
    IngestError,
    extract_raw_month,
    validate_month,
    validated_summary,
)
from bangkok_pipeline_tests.conftest import load_directly

MONTH = "2018-07"
HEADER = "Date,z1_Light(kW),z1_Plug(kW)"  # two channels of floor 1
FLOOR2_HEADER = "Date,z1_AC1(kW),z1_Light(kW)"


def minutes(start: str, count: int, stamp: str = "%Y-%m-%d %H:%M:%S") -> list[str]:
    """`count` lines a minute apart from `start`, two plausible kW values each."""
    first = datetime.fromisoformat(start)
    return [
        f"{first + timedelta(minutes=i):{stamp}},{1 + i % 7 / 10},{2 + i % 3 / 4}"
        for i in range(count)
    ]


def write(directory: Path, files: dict[str, list[str]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, lines in files.items():
        (directory / name).write_text("\n".join(lines) + "\n")
    return directory


def query(url: str, statement: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(statement).fetchall()


# --- a whole file in another timestamp format ------------------------------------------------

OTHER_FORMATS = {
    "slashes": "%Y/%m/%d %H:%M",  # 2018/07/01 00:00
    "excel": "%-m/%-d/%Y %-H:%M",  # 7/1/2018 0:00, as Excel re-saves it
    "iso": "%Y-%m-%dT%H:%M:%S",  # 2018-07-01T00:00:00
}


@pytest.mark.parametrize("style", OTHER_FORMATS)
def test_a_file_in_another_timestamp_format_is_refused_naming_its_first_line(
    tmp_path: Path, style: str
) -> None:
    lines = minutes("2018-07-01 00:00:00", 5, OTHER_FORMATS[style])
    path = write(tmp_path, {"2018Floor1.csv": [HEADER, *lines]}) / "2018Floor1.csv"
    with pytest.raises(SourceError) as error:
        read_source_lines(path)
    message = str(error.value)
    date = lines[0].split(",")[0]
    assert message == (
        f"2018Floor1.csv: none of its 5 data lines has a Date that places it in a month, so "
        f"nothing of it can be loaded; line 2: {lines[0]!r} (Date '{date}' is not a timestamp "
        "YYYY-MM-DD HH:MM:SS); expected Date as YYYY-MM-DD HH:MM:SS on a whole minute, in 2018, "
        "from 2018-07 on"
    )
    assert "\n" not in message


def test_a_long_first_line_is_truncated_in_the_message(tmp_path: Path) -> None:
    line = "7/1/2018 0:00," + ",".join(["1.5"] * 40)
    header = "Date," + ",".join(f"z1_AC{n}(kW)" for n in range(1, 41))
    path = write(tmp_path, {"2018Floor1.csv": [header, line]})
    with pytest.raises(SourceError, match=r"line 2: '7/1/2018 0:00,1\.5,.{42}…' \(Date"):
        read_source_lines(path / "2018Floor1.csv")


def test_a_file_of_another_year_as_a_whole_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, {"2018Floor1.csv": [HEADER, *minutes("2019-07-01 00:00:00", 3)]})
    with pytest.raises(SourceError, match=r"\(Date 2019-07-01 00:00:00 is not in 2018, the year"):
        read_source_lines(path / "2018Floor1.csv")


@pytest.mark.integration
@pytest.mark.parametrize("style", OTHER_FORMATS)
def test_the_month_fails_and_registers_nothing(
    migrated_url: str, tmp_path: Path, style: str
) -> None:
    """Used to load floor 2 alone and report success ('0 quarantined')."""
    source = write(
        tmp_path / "source",
        {
            "2018Floor1.csv": [HEADER, *minutes("2018-07-01 00:00:00", 5, OTHER_FORMATS[style])],
            "2018Floor2.csv": [FLOOR2_HEADER, *minutes("2018-07-01 00:00:00", 5)],
        },
    )
    with (
        psycopg.connect(migrated_url, autocommit=True) as conn,
        pytest.raises(IngestError, match=r"^2018Floor1\.csv: none of its 5 data lines .* line 2: "),
    ):
        extract_raw_month(
            conn, source, run_layers(Month.parse(MONTH), "test", home=tmp_path / "home")
        )
    assert query(migrated_url, "SELECT count(*) FROM sensors") == [(0,)]


# --- lines of another year, before the first partition, or after the last one -------------


def test_misdated_lines_are_placed_with_their_neighbours(tmp_path: Path) -> None:
    lines = pl.DataFrame(
        {
            "line": [
                "2018-06-30 23:59:00,1",  # before the first partition: goes with the next line
                "2018-07-31 23:59:00,1",
                "2019-03-01 00:00:00,1",  # another year than the file's: with the line before
                "2018-07-31 23:59:30,1",  # seconds: with the line before
                "2018-08-01 00:00:00,1",
            ]
        }
    )
    assert month_of_lines(lines, year=2018).to_list() == ["2018-07"] * 4 + ["2018-08"]
    assert month_of_lines(lines).to_list() == ["2018-07"] * 2 + ["2019-03"] * 2 + ["2018-08"]


@pytest.mark.integration
def test_lines_of_another_year_or_before_the_first_partition_are_quarantined(
    migrated_url: str, tmp_path: Path
) -> None:
    """Used to be neither loaded nor quarantined: 2018 months read only their own months."""
    body = minutes("2018-07-01 00:00:00", 70)
    clean = write(tmp_path / "clean", {"2018Floor1.csv": [HEADER, *body]})
    home = tmp_path / "home"
    assert load_directly(migrated_url, clean, MONTH, home) == 140
    readings = "SELECT sensor_id, ts, value FROM sensor_readings ORDER BY 1, 2"
    before = query(migrated_url, readings)

    misdated = [
        HEADER,
        "2018-06-30 23:59:00,1.0,2.0",  # line 2: before the first partition
        *body[:60],
        "2019-03-01 00:00:00,1.0,2.0",  # line 63: a 2019 line in a 2018 file
        *body[60:],
    ]
    source = write(tmp_path / "misdated", {"2018Floor1.csv": misdated})
    assert load_directly(migrated_url, source, MONTH, home) == 140
    assert query(migrated_url, readings) == before
    assert query(
        migrated_url,
        "SELECT source_file, line_no, column_name, raw_text, reason, detail FROM quarantine "
        "ORDER BY line_no",
    ) == [
        (
            "2018Floor1.csv",
            2,
            None,
            "2018-06-30 23:59:00,1.0,2.0",
            "outside_partition",
            "2018Floor1.csv line 2: Date 2018-06-30 23:59:00 is before the first partition 2018-07",
        ),
        (
            "2018Floor1.csv",
            63,
            None,
            "2019-03-01 00:00:00,1.0,2.0",
            "outside_partition",
            "2018Floor1.csv line 63: Date 2019-03-01 00:00:00 is not in 2018, the year of "
            "2018Floor1.csv",
        ),
    ]
    assert validated_summary(layer_dir("validated", Month.parse(MONTH), home))["rows_read"] == 72


def test_misdated_lines_change_the_digest_of_the_month_that_quarantines_them(
    tmp_path: Path,
) -> None:
    """The source sensor must reload the month holding them, not report a month 2018-06."""
    body = minutes("2018-07-01 00:00:00", 3)
    digests = []
    for early in ("2018-06-30 23:58:00,1.0,2.0", "2018-06-30 23:59:00,1.0,2.0"):
        path = write(tmp_path, {"2018Floor1.csv": [HEADER, early, *body, early]}) / "2018Floor1.csv"
        state = read_file_state(path, 2018)
        assert list(state.months) == ["2018-07"]
        digests.append(state.months["2018-07"])
    assert digests[0] != digests[1]


@pytest.mark.integration
def test_lines_after_the_last_partition_wait_and_are_reported(
    migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUBEMS_LAST_MONTH", MONTH)
    source = write(
        tmp_path,
        {
            "2018Floor1.csv": [
                HEADER,
                *minutes("2018-07-31 23:58:00", 2),
                *minutes("2018-08-01 00:00:00", 3),
            ],
            "2019Floor1.csv": [HEADER, *minutes("2019-01-01 00:00:00", 1)],
        },
    )
    with psycopg.connect(migrated_url, autocommit=True) as conn:
        raw = extract_raw_month(
            conn, source, run_layers(Month.parse(MONTH), "test", home=tmp_path / "home")
        )
    assert raw.lines == 2  # July only: August is neither loaded into July nor quarantined
    assert raw.waiting == [
        "2018Floor1.csv: 3 lines of 2018-08 have no partition yet (the last is 2018-07): "
        "raise CUBEMS_LAST_MONTH to load them",
        "2019Floor1.csv: year 2019 has no partition yet (the last is 2018-07): "
        "raise CUBEMS_LAST_MONTH to load it",
    ]
    assert (
        validate_month(run_layers(Month.parse(MONTH), "test", home=tmp_path / "home")).quarantined
        == 0
    )


# --- seconds ---------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_timestamp_with_seconds_is_quarantined_before_the_database(
    migrated_url: str, tmp_path: Path
) -> None:
    """Used to pass validation and fail the load on hourly_sensor_stats_n_check (61 in an hour)."""
    lines = [HEADER, *minutes("2018-07-01 00:00:00", 60), "2018-07-01 00:00:30,1.0,2.0"]
    source = write(tmp_path, {"2018Floor1.csv": lines})
    assert load_directly(migrated_url, source, MONTH, tmp_path / "home") == 120
    assert query(
        migrated_url, "SELECT line_no, reason, detail FROM quarantine ORDER BY line_no"
    ) == [
        (
            62,
            "invalid_timestamp",
            "2018Floor1.csv line 62: Date '2018-07-01 00:00:30' is not on a whole minute: "
            "readings are one a minute, seconds must be 00",
        )
    ]
    assert query(migrated_url, "SELECT DISTINCT n FROM hourly_sensor_stats") == [(60,)]


def test_the_reading_model_rejects_a_timestamp_off_the_minute() -> None:
    ts = datetime(2018, 7, 1, 0, 0, 30, tzinfo=BANGKOK_TZ)
    readings = pl.DataFrame(
        {"ts": [ts, ts + timedelta(seconds=30)], "sensor_id": [1, 1], "value": [1.0, 1.0]},
        schema={
            "ts": pl.Datetime("us", "Asia/Bangkok"),
            "sensor_id": pl.Int32,
            "value": pl.Float64,
        },
    )
    kind = pl.lit("light", pl.Enum(list(PLAUSIBLE_RANGES)))
    with pytest.raises(pandera.errors.SchemaError, match="ts_on_whole_minute"):
        ReadingModel.for_month(MONTH).validate(readings.with_columns(kind=kind))
    valid, quarantine = validate_readings(
        readings.with_columns(line_no=pl.Series([5, 6])), {1: "light"}, MONTH, "2018Floor1.csv"
    )
    assert valid.height == 1
    assert quarantine.select("line_no", "reason", "detail").rows() == [
        (
            5,
            "invalid_timestamp",
            "2018Floor1.csv line 5 column sensor 1: timestamp 2018-07-01 00:00:30 is not on a "
            "whole minute: readings are one a minute",
        )
    ]


def test_long_readings_quarantine_each_timestamp_rule_with_its_reason(tmp_path: Path) -> None:
    lines = [
        HEADER,
        "2018-07-01 00:00:00,1,2",
        "2018-07-01 00:00:59,1,2",
        "2017-07-01 00:01:00,1,2",
        "2018/07/01 00:02,1,2",
        "2018-07-01 00:03:00,1,2",
    ]
    path = write(tmp_path, {"2018Floor1.csv": lines}) / "2018Floor1.csv"
    ids = {"z1_Light(kW)": 1, "z1_Plug(kW)": 2}
    result = long_readings(
        raw_month_frame(read_source_lines(path), MONTH), path.name, 1, MONTH, ids
    )
    assert result.readings.height == 4
    assert result.quarantine.select("line_no", "reason").sort("line_no").rows() == [
        (3, "invalid_timestamp"),
        (4, "outside_partition"),
        (5, "invalid_timestamp"),
    ]


# --- header-only file, floor 8, year before the data, unnamed column -------------------------


@pytest.mark.integration
def test_a_header_only_file_is_reported_and_its_floor_counts_as_missing(
    migrated_url: str, tmp_path: Path
) -> None:
    """Used to drop floor 1 silently: no warning, no completeness entry."""
    source = write(
        tmp_path,
        {
            "2018Floor1.csv": [HEADER],
            "2018Floor2.csv": [FLOOR2_HEADER, *minutes("2018-07-01 00:00:00", 3)],
        },
    )
    home = tmp_path / "home"
    with psycopg.connect(migrated_url, autocommit=True) as conn:
        raw = extract_raw_month(conn, source, run_layers(Month.parse(MONTH), "test", home=home))
    assert raw.without_lines == [
        "2018Floor1.csv: header only, no data lines: floor 1 has no readings for 2018-07"
    ]
    assert [(f["file"], f["lines"]) for f in raw.files] == [
        ("2018Floor1.csv", 0),
        ("2018Floor2.csv", 3),
    ]
    validated = validate_month(run_layers(Month.parse(MONTH), "test", home=home))
    assert validated.completeness_by_floor["1"] == 0.0
    assert validated.completeness_by_floor["2"] > 0
    assert validated.readings == 6


@pytest.mark.integration
def test_a_month_no_file_has_lines_for_names_why(migrated_url: str, tmp_path: Path) -> None:
    source = write(
        tmp_path,
        {
            "2018Floor1.csv": [HEADER],
            "2018Floor2.csv": [FLOOR2_HEADER, *minutes("2018-09-01 00:00:00", 2)],
        },
    )
    with (
        psycopg.connect(migrated_url, autocommit=True) as conn,
        pytest.raises(IngestError) as error,
    ):
        extract_raw_month(
            conn, source, run_layers(Month.parse(MONTH), "test", home=tmp_path / "home")
        )
    assert str(error.value) == (
        f"no source rows for 2018-07 in {source}: nothing to load (2018Floor1.csv: header only, "
        "no data lines: floor 1 has no readings for 2018-07; 2018Floor2.csv: no line of 2018-07, "
        "its 2 lines are of 2018-09: floor 2 has no readings for 2018-07)"
    )
    assert query(migrated_url, "SELECT count(*) FROM sensors") == [(0,)]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("2018Floor8.csv", "2018Floor8.csv: floor 8 is not a floor of Chamchuri 5 (floors 1-7)"),
        ("2017Floor1.csv", "2017Floor1.csv: year 2017 is before the first partition 2018-07"),
    ],
)
def test_a_file_no_month_can_load_is_refused_before_any_sensor_is_registered(
    migrated_url: str, tmp_path: Path, name: str, message: str
) -> None:
    """Floor 8 used to be registered for good; a 2017 file was never read by any month."""
    source = write(
        tmp_path,
        {
            "2018Floor1.csv": [HEADER, *minutes("2018-07-01 00:00:00", 2)],
            name: [HEADER, *minutes(f"{name[:4]}-07-01 00:00:00", 2)],
        },
    )
    with (
        psycopg.connect(migrated_url, autocommit=True) as conn,
        pytest.raises(IngestError) as error,
    ):
        extract_raw_month(
            conn, source, run_layers(Month.parse(MONTH), "test", home=tmp_path / "home")
        )
    assert str(error.value) == (
        f"{message}: no month loads while such a file is in {source}; remove or rename it"
    )
    assert query(migrated_url, "SELECT count(*) FROM sensors") == [(0,)]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "Date,z1_Light(kW),z1_Plug(kW),",
            "2018Floor1.csv line 1: column 4 has no name (the header ends with ','); every "
            "column needs a name such as z1_Light(kW): remove the empty column",
        ),
        (
            "Date,,z1_Plug(kW)",
            "2018Floor1.csv line 1: column 2 has no name; every column needs a name such as "
            "z1_Light(kW): remove the empty column",
        ),
    ],
)
def test_an_unnamed_header_column_is_refused_naming_file_line_and_column(
    tmp_path: Path, header: str, message: str
) -> None:
    """A trailing comma used to be an unknown column '' and every line without it unparseable."""
    path = write(tmp_path, {"2018Floor1.csv": [header, "2018-07-01 00:00:00,1.0,2.0,"]})
    with pytest.raises(SourceError) as error:
        read_source_lines(path / "2018Floor1.csv")
    assert str(error.value) == message
