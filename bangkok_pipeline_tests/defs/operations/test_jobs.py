"""The operations jobs in process on a real database: the database_health checks (one per
concern), the retention job (a no-op without a policy, a refused policy fails the run with
the reason, so the run-failure alert reports it) and the compression job (a no-op without a
policy; with BANGKOK_COMPRESS_AFTER_MONTHS=0 it compresses every loaded month, one observation
with sizes, ratio, seconds and readings per month, and a rerun finds nothing to do)."""

from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.definitions import defs
from bangkok_pipeline.defs.operations.assets import postgres_database
from bangkok_pipeline.defs.operations.checks import database_health
from bangkok_pipeline.defs.operations.jobs import (
    compression_job,
    database_health_job,
    retention_job,
)
from bangkok_pipeline.defs.operations.schedules import (
    compression_schedule,
    partition_maintenance_schedule,
    retention_schedule,
)
from bangkok_pipeline.defs.resources import LayersResource, PostgresResource, SourceDirectory
from bangkok_pipeline.ops import health
from bangkok_pipeline.transform.fingerprint import database_fingerprints, mismatched_sensors
from bangkok_pipeline.warehouse import compression
from bangkok_pipeline_tests.conftest import load_directly, new_database

pytestmark = pytest.mark.integration


def test_the_definitions_hold_the_operations_domain() -> None:
    dg.Definitions.validate_loadable(defs)
    assert {"database_health", "partition_maintenance", "retention"} <= {
        job.name for job in defs.jobs or []
    }
    assert "database_health_sensor" in {s.name for s in defs.sensors or []}
    assert {"partition_maintenance_schedule", "retention_schedule", "compression_schedule"} == {
        s.name for s in defs.schedules or [] if "ingest" not in s.name
    }
    nightly = [s for s in defs.schedules or [] if isinstance(s, dg.ScheduleDefinition)]
    assert {s.execution_timezone for s in nightly} == {"Asia/Bangkok"}
    assert len({s.cron_schedule for s in nightly}) == len(nightly), "no two at the same time"
    assert (
        partition_maintenance_schedule.cron_schedule,
        retention_schedule.cron_schedule,
        compression_schedule.cron_schedule,
    ) == ("0 1 * * *", "0 3 * * *", "0 4 * * *"), "compression after retention"


def test_database_health_checks_run_as_a_job(migrated_url: str, tmp_path: Path) -> None:
    result = (
        dg.Definitions(
            assets=[postgres_database],
            asset_checks=[database_health],
            jobs=[database_health_job],
            resources={
                "database": PostgresResource(database_url=migrated_url),
                "source": SourceDirectory(path=str(tmp_path)),
                "layers": LayersResource(),
            },
        )
        .resolve_job_def("database_health")
        .execute_in_process(instance=dg.DagsterInstance.ephemeral())
    )
    assert result.success
    outcomes = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert outcomes == dict.fromkeys(health.CONCERNS, True)


def test_retention_job_without_a_policy_does_nothing_and_a_bad_policy_fails_the_run(
    migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resources = {"database": PostgresResource(database_url=migrated_url)}
    monkeypatch.delenv("BANGKOK_RETAIN_RAW_MONTHS", raising=False)
    monkeypatch.setenv("BANGKOK_ARCHIVE_DIR", str(tmp_path / "archive"))
    quiet = retention_job.execute_in_process(
        resources=resources, instance=dg.DagsterInstance.ephemeral()
    )
    assert quiet.success and not (tmp_path / "archive").exists()
    monkeypatch.setenv("BANGKOK_RETAIN_RAW_MONTHS", "0")
    refused = retention_job.execute_in_process(
        resources=resources, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    assert not refused.success
    failure = next(e for e in refused.all_events if e.is_step_failure)
    assert "would archive every month" in str(failure.step_failure_data.error)


def test_compression_job_applies_the_policy_and_records_each_month(
    server_url: str, tiny_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with new_database(server_url, migrate=True) as url:
        load_directly(url, tiny_source, "2019-02", tmp_path / "home")
        load_directly(url, tiny_source, "2019-03", tmp_path / "home")
        with psycopg.connect(url) as conn:
            before = database_fingerprints(conn, sql.Identifier("sensor_readings"))
        resources = {"database": PostgresResource(database_url=url)}

        monkeypatch.setenv("BANGKOK_COMPRESS_AFTER_MONTHS", "off")
        quiet = compression_job.execute_in_process(
            resources=resources, instance=dg.DagsterInstance.ephemeral()
        )
        assert quiet.success and not quiet.asset_observations_for_node("apply_compression")

        monkeypatch.setenv("BANGKOK_COMPRESS_AFTER_MONTHS", "0")
        result = compression_job.execute_in_process(
            resources=resources, instance=dg.DagsterInstance.ephemeral()
        )
        assert result.success
        observed: list[dict[str, Any]] = [
            {key: value.value for key, value in o.metadata.items()}
            for o in result.asset_observations_for_node("apply_compression")
        ]
        assert [o["compressed_month"] for o in observed] == ["2019-02", "2019-03"]
        with psycopg.connect(url) as conn:
            assert compression.tiers(conn) == {
                Month(2019, 2): "compressed",
                Month(2019, 3): "compressed",
            }
            after = database_fingerprints(conn, sql.Identifier("sensor_readings"))
        assert mismatched_sensors(before, after) == [] and before.keys() == after.keys()
        assert sum(o["readings"] for o in observed) == sum(n for n, _, _ in before.values())
        for o in observed:
            assert o["bytes_before"] > o["bytes_after"] > 0
            assert o["ratio"] == pytest.approx(o["bytes_before"] / o["bytes_after"], abs=0.01)
            assert o["ratio"] > 2 and o["seconds"] > 0

        again = compression_job.execute_in_process(
            resources=resources, instance=dg.DagsterInstance.ephemeral()
        )
        assert again.success and not again.asset_observations_for_node("apply_compression")
