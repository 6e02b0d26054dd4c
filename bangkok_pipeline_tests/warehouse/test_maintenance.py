"""Partition premake on a real server: nothing before the first load, the window after it,
idempotent runs, a load into a premade month (the swap replaces the empty partition like any
attached month), premake after that load leaving every existing partition alone, gaps reported,
a month being loaded skipped, and the Dagster job."""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from bangkok_pipeline.cli.main import run
from bangkok_pipeline.core.months import Month
from bangkok_pipeline.defs.operations.jobs import partition_maintenance_job
from bangkok_pipeline.defs.resources import PostgresResource
from bangkok_pipeline.transform.fingerprint import database_fingerprints
from bangkok_pipeline.warehouse import maintenance
from bangkok_pipeline.warehouse.month_lock import month_lock
from bangkok_pipeline_tests.conftest import load_directly, new_database

pytestmark = [pytest.mark.integration, pytest.mark.hosted]


def _names(*months: str) -> list[str]:
    return [
        f"partitions.{parent}_y{month[:4]}m{month[5:]}"
        for month in months
        for parent in ("sensor_readings_rows", "hourly_sensor_stats", "daily_sensor_stats")
    ]


def _tables(conn: psycopg.Connection) -> dict[str, tuple[int, str | None]]:
    """Every table in schema partitions -> (oid, parent it is attached to)."""
    rows = conn.execute(
        "SELECT c.relname, c.oid::int, i.inhparent::regclass::text FROM pg_class AS c "
        "LEFT JOIN pg_inherits AS i ON i.inhrelid = c.oid "
        "WHERE c.relnamespace = 'partitions'::regnamespace AND c.relkind IN ('r', 'p')"
    ).fetchall()
    return {name: (oid, parent) for name, oid, parent in rows}


@pytest.fixture(scope="module")
def url(server_url: str) -> Iterator[str]:
    with new_database(server_url, migrate=True) as database_url:
        yield database_url


def test_premake_waits_for_the_first_load(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        report = maintenance.premake(conn, 2)
        assert report.window == [] and report.created == []
        assert report.summary() == "nothing loaded yet: no month to premake after"
        assert _tables(conn) == {}


def test_premake_creates_the_window_once_and_a_load_replaces_a_premade_month(
    url: str, tiny_source: Path, tmp_path: Path
) -> None:
    load_directly(url, tiny_source, "2019-02", tmp_path)
    with psycopg.connect(url, autocommit=True) as conn:
        first = maintenance.premake(conn, 2)
        assert first.window == [Month(2019, 2), Month(2019, 3), Month(2019, 4)]
        assert first.created == _names("2019-03", "2019-04")
        assert first.gaps == []
        premade = _tables(conn)
        assert all(parent is not None for _, parent in premade.values())
        assert conn.execute("SELECT count(*) FROM sensor_readings").fetchone() == (
            conn.execute(
                "SELECT count(*) FROM partitions.sensor_readings_rows_y2019m02_b1"
            ).fetchone()
        )
        again = maintenance.premake(conn, 2)
        assert again.created == [] and "nothing to create" in again.summary()
        assert _tables(conn) == premade

    rows = load_directly(url, tiny_source, "2019-03", tmp_path)
    with psycopg.connect(url, autocommit=True) as conn:
        after_load = _tables(conn)
        months = [name.removeprefix("partitions.") for name in _names("2019-03")]
        leaves = {f"{name}_b1" for name in months}
        assert set(after_load) == set(premade) | leaves, "the swap left no extra table behind"
        for name in months:  # the premade month took the building's leaf
            assert after_load[name] == premade[name]
            assert after_load[f"{name}_b1"][1] == f"partitions.{name}"
        assert after_load["sensor_readings_rows_y2019m03"][1] == "sensor_readings_rows"
        assert (
            after_load["sensor_readings_rows_y2019m04"] == premade["sensor_readings_rows_y2019m04"]
        )
        figures = database_fingerprints(
            conn, psycopg.sql.Identifier("partitions", "sensor_readings_rows_y2019m03_b1")
        )
        assert sum(n for n, _, _ in figures.values()) == rows > 0
        assert conn.execute(
            "SELECT bool_and(matches) FROM reconciliation WHERE month = '2019-03-01'"
        ).fetchone() == (True,)
        assert conn.execute(
            "SELECT count(*) > 0 FROM hourly_sensor_stats WHERE bucket >= '2019-03-01 00:00+07'"
        ).fetchone() == (True,)

        moved = maintenance.premake(conn, 2)
        assert moved.created == _names("2019-05")
        now = _tables(conn)
        assert {k: v for k, v in now.items() if k in after_load} == after_load
        assert maintenance.premake(conn, 2).created == []
        assert _tables(conn) == now


def test_gaps_are_reported_and_a_busy_month_is_skipped(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO load_log (building_id, month, run_id, status, finished_at) "
            "VALUES (1, '2019-08-01', 'fake', 'succeeded', now())"
        )
        try:
            with month_lock(conn, Month(2019, 9)):  # as a load of 2019-09 holds it
                report = maintenance.premake(conn, 1)
            assert report.created == _names("2019-08")
            assert report.skipped == ["2019-09 is being loaded, archived or restored"]
            assert report.gaps == [Month(2019, 6), Month(2019, 7)]
            assert "gaps (loaded range, no partition): 2019-06, 2019-07" in report.summary()
        finally:
            conn.execute("DELETE FROM load_log WHERE run_id = 'fake'")


def test_the_partition_maintenance_job_premakes_and_records_an_observation(url: str) -> None:
    result = partition_maintenance_job.execute_in_process(
        resources={"database": PostgresResource(database_url=url)},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    observations = [
        e.event_specific_data.asset_observation  # type: ignore[union-attr]
        for e in result.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    ]
    assert observations[0].asset_key == dg.AssetKey("postgres_database")
    assert observations[0].metadata["premake_window"].value == ["2019-03", "2019-04", "2019-05"]
    assert observations[0].metadata["created"].value == []


def test_db_premake_command(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    assert run(["db", "premake", "--ahead", "3"]) == 0
    assert capsys.readouterr().out == (
        "premake window 2019-03..2019-06: created " + ", ".join(_names("2019-06")) + "\n"
    )
    assert run(["db", "premake", "--ahead", "3"]) == 0
    assert "nothing to create" in capsys.readouterr().out
