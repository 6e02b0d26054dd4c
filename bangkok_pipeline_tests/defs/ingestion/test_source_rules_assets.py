"""Issue 9 source cases through the Dagster assets: real materializations, real PostgreSQL.

A file that cannot be placed, a floor the building lacks and an unnamed header column fail
`raw_readings` with one line naming the file; misdated, off-minute and header-only input loads the
rest of the month and reports the difference (quarantine, warnings, metadata, a failing
completeness check). Small hand-written files keep each materialization to a few seconds.
"""

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from bangkok_pipeline.defs.ingestion.assets import (
    load_month_partitions,
    raw_readings,
    validated_readings,
)
from bangkok_pipeline.defs.resources import LayersResource, PostgresResource, SourceDirectory
from bangkok_pipeline_tests.conftest import building_instance, cubems, new_database
from bangkok_pipeline_tests.source.test_source_rules import FLOOR2_HEADER, HEADER, minutes, write

pytestmark = pytest.mark.integration

MONTH = "2018-07"
ASSETS = [raw_readings, validated_readings, load_month_partitions]


@pytest.fixture(scope="module")
def url(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch, new_database(server_url, migrate=True) as url:
        patch.setenv("BANGKOK_HOME", str(tmp_path_factory.mktemp("home")))
        yield url


def materialize(
    url: str, source: Path, instance: dg.DagsterInstance | None = None
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS,
        partition_key=cubems(MONTH),
        resources={
            "database": PostgresResource(database_url=url),
            "source": SourceDirectory(path=str(source)),
            "layers": LayersResource(),
        },
        instance=instance or building_instance(),
        raise_on_error=False,
    )


def query(url: str, statement: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(statement).fetchall()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"2018Floor1.csv": [HEADER, "7/1/2018 0:00,1.0,2.0", "7/1/2018 0:01,1.0,2.0"]},
            "2018Floor1.csv: none of its 2 data lines has a Date that places it in a month, so "
            "nothing of it can be loaded; line 2: '7/1/2018 0:00,1.0,2.0' (Date '7/1/2018 0:00' "
            "is not a timestamp YYYY-MM-DD HH:MM:SS); expected Date as YYYY-MM-DD HH:MM:SS on a "
            "whole minute, in 2018, from 2018-07 on",
        ),
        (
            {"2018Floor8.csv": [HEADER, *minutes("2018-07-01 00:00:00", 2)]},
            "2018Floor8.csv: floor 8 is not a floor of Chamchuri 5 (floors 1-7): no month loads "
            "while such a file is in",
        ),
        (
            {"2018Floor1.csv": [HEADER + ",", "2018-07-01 00:00:00,1.0,2.0,"]},
            "2018Floor1.csv line 1: column 4 has no name (the header ends with ',')",
        ),
    ],
    ids=["excel-timestamps", "floor-8", "trailing-comma"],
)
def test_unloadable_files_fail_raw_readings_with_one_line_naming_the_file(
    url: str, tmp_path: Path, files: dict[str, list[str]], message: str
) -> None:
    good = {"2018Floor2.csv": [FLOOR2_HEADER, *minutes("2018-07-01 00:00:00", 5)]}
    result = materialize(url, write(tmp_path, {**good, **files}))
    assert not result.success
    failures = [
        e.step_failure_data.user_failure_data.description
        for e in result.all_events
        if e.is_step_failure and e.step_failure_data and e.step_failure_data.user_failure_data
    ]
    assert [e.step_key for e in result.all_events if e.is_step_failure] == ["raw_readings"]
    assert len(failures) == 1 and message in str(failures[0])
    assert "\n" not in str(failures[0])
    assert query(url, "SELECT count(*) FROM sensors") == [(0,)]
    assert query(url, "SELECT count(*) FROM sensor_readings") == [(0,)]


def test_misdated_off_minute_and_header_only_input_loads_the_rest_and_says_so(
    url: str, tmp_path: Path
) -> None:
    floor2 = minutes("2018-07-01 00:00:00", 180)
    source = write(
        tmp_path,
        {
            "2018Floor1.csv": [HEADER],
            "2018Floor2.csv": [
                FLOOR2_HEADER,
                *floor2[:60],
                "2018-07-01 00:00:30,1.0,2.0",  # line 62
                "2019-07-01 01:00:00,1.0,2.0",  # line 63
                *floor2[60:],
                "2018-06-01 00:00:00,1.0,2.0",  # line 184
            ],
        },
    )
    instance = building_instance()
    result = materialize(url, source, instance)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    assert query(url, "SELECT count(*) FROM sensor_readings") == [(360,)]
    assert query(url, "SELECT line_no, reason FROM quarantine ORDER BY line_no") == [
        (62, "invalid_timestamp"),
        (63, "outside_partition"),
        (184, "outside_partition"),
    ]
    raw = result.asset_materializations_for_node("raw_readings")[0].metadata
    expected = "2018Floor1.csv: header only, no data lines: floor 1 has no readings for 2018-07"
    assert raw["files_without_lines"].value == [expected]
    warnings = [
        entry.user_message
        for entry in instance.all_logs(result.run_id)
        if entry.level == logging.WARNING
    ]
    assert expected in warnings
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    completeness = checks["completeness_per_floor"]
    assert not completeness.passed
    below = completeness.metadata["below_threshold"].value
    assert isinstance(below, Mapping) and below["1"] == 0.0  # floor 2: 3 hours
