"""The operations jobs in process on a real database: the database_health checks (one per
concern) and the retention job (a no-op without a policy, a refused policy fails the run with
the reason, so the run-failure alert reports it)."""

from pathlib import Path

import dagster as dg
import pytest

from bangkok_pipeline.definitions import defs
from bangkok_pipeline.defs.operations.assets import postgres_database
from bangkok_pipeline.defs.operations.checks import database_health
from bangkok_pipeline.defs.operations.jobs import database_health_job, retention_job
from bangkok_pipeline.defs.resources import PostgresResource, SourceDirectory
from bangkok_pipeline.ops import health

pytestmark = pytest.mark.integration


def test_the_definitions_hold_the_operations_domain() -> None:
    dg.Definitions.validate_loadable(defs)
    assert {"database_health", "partition_maintenance", "retention"} <= {
        job.name for job in defs.jobs or []
    }
    assert "database_health_sensor" in {s.name for s in defs.sensors or []}
    assert {"partition_maintenance_schedule", "retention_schedule"} == {
        s.name for s in defs.schedules or [] if "ingest" not in s.name
    }


def test_database_health_checks_run_as_a_job(migrated_url: str, tmp_path: Path) -> None:
    result = (
        dg.Definitions(
            assets=[postgres_database],
            asset_checks=[database_health],
            jobs=[database_health_job],
            resources={
                "database": PostgresResource(database_url=migrated_url),
                "source": SourceDirectory(path=str(tmp_path)),
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
