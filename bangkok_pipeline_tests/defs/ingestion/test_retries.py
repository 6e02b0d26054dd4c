"""Transient database failures are retried; permanent ones fail at once with their cause."""

import threading
import time
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.db.connection import is_transient
from bangkok_pipeline.defs.ingestion.assets import (
    load_month_partitions,
    raw_readings,
    validated_readings,
)
from bangkok_pipeline.defs.resources import LayersResource, PostgresResource, SourceDirectory
from bangkok_pipeline.devtools.generator import generate
from bangkok_pipeline_tests.conftest import building_instance, cubems

pytestmark = pytest.mark.integration

ASSETS = [raw_readings, validated_readings, load_month_partitions]


def _materialize(url: str, source: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS,
        partition_key=cubems("2019-02"),
        resources={
            "database": PostgresResource(database_url=url),
            "source": SourceDirectory(path=str(source)),
            "layers": LayersResource(),
        },
        instance=building_instance(),
        raise_on_error=False,
    )


def test_a_connection_killed_mid_copy_is_retried_and_the_load_succeeds(
    migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BANGKOK_HOME", str(tmp_path / "home"))
    source = tmp_path / "source"
    manifest = generate(source, [Month(2019, 2)], seed=11)
    killed: list[int] = []

    def kill_first_copy() -> None:
        with psycopg.connect(migrated_url, autocommit=True) as conn:
            deadline = time.monotonic() + 120
            while not killed and time.monotonic() < deadline:
                rows = conn.execute(
                    "SELECT pg_terminate_backend(pid), pid FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'COPY%%' "
                    "AND pid <> pg_backend_pid()"
                ).fetchall()
                killed.extend(pid for ok, pid in rows if ok)
                time.sleep(0.02)

    killer = threading.Thread(target=kill_first_copy)
    killer.start()
    result = _materialize(migrated_url, source)
    killer.join()
    assert killed, "the COPY was never seen, so nothing was injected"
    assert result.success
    retried = [e for e in result.all_events if e.event_type_value == "STEP_RESTARTED"]
    assert [e.step_key for e in retried] == ["load_month"]
    with psycopg.connect(migrated_url) as conn:
        count = conn.execute("SELECT count(*) FROM sensor_readings").fetchone()
        statuses = conn.execute("SELECT status FROM load_log ORDER BY load_id").fetchall()
    assert count == (manifest["totals"]["2019-02"]["valid_readings"],)
    assert statuses == [("failed",), ("succeeded",)]


def test_a_schema_mismatch_fails_at_once_without_retry(
    migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BANGKOK_HOME", str(tmp_path / "home"))
    source = tmp_path / "source"
    generate(source, [Month(2019, 2)], seed=11)
    with psycopg.connect(migrated_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE load_log RENAME COLUMN rows_read TO rows_seen")
    result = _materialize(migrated_url, source)
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_RESTARTED"]
    failure = next(e for e in result.all_events if e.is_step_failure)
    description = failure.step_failure_data.user_failure_data.description  # type: ignore[union-attr]
    assert description is not None
    assert description.startswith("database error (UndefinedColumn)")
    assert "rows_read" in description


def test_transient_and_permanent_errors_are_told_apart() -> None:
    assert is_transient(psycopg.errors.AdminShutdown())
    assert is_transient(psycopg.errors.SerializationFailure())
    assert is_transient(psycopg.errors.DeadlockDetected())
    assert is_transient(psycopg.OperationalError("connection refused"))
    assert not is_transient(psycopg.errors.UndefinedColumn())
    assert not is_transient(psycopg.errors.CheckViolation())
    assert not is_transient(ValueError("bad data"))
