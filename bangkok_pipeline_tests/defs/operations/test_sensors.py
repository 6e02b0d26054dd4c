"""The health sensor with `build_sensor_context` on a real database: one asset-check evaluation
per concern on `postgres_database` at first, then only for concerns whose status changed; a
concern turning critical (a fake 1 MB budget) is posted to the webhook and recorded in
health_alerts once, not at every evaluation, and its recovery is reported too."""

from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest

from bangkok_pipeline.defs.operations.assets import DATABASE
from bangkok_pipeline.defs.operations.sensors import database_health_sensor
from bangkok_pipeline.defs.resources import LayersResource, PostgresResource, SourceDirectory
from bangkok_pipeline.ops import health

pytestmark = pytest.mark.integration


def _evaluate(url: str, source: Path, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(),
        cursor=cursor,
        resources={
            "database": PostgresResource(database_url=url),
            "source": SourceDirectory(path=str(source)),
            "layers": LayersResource(),
        },
    )
    result = database_health_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_critical_findings_are_evaluated_alerted_once_and_resolved(
    migrated_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    webhook: list[dict[str, Any]],
) -> None:
    monkeypatch.setenv("BANGKOK_DB_BUDGET", "1MB")
    first = _evaluate(migrated_url, tmp_path, None)
    evaluations = {e.check_name: e for e in first.asset_events}  # type: ignore[union-attr]
    assert list(evaluations) == list(health.CONCERNS)
    assert all(e.asset_key == DATABASE for e in evaluations.values())
    size = evaluations["database_size"]
    assert not size.passed and size.severity == dg.AssetCheckSeverity.ERROR  # type: ignore[union-attr]
    assert evaluations["migrations"].passed  # type: ignore[union-attr]
    assert [(a["concern"], a["status"]) for a in webhook] == [("database_size", "critical")]
    assert "bangkok_pipeline health: database_size is critical" in webhook[0]["text"]

    second = _evaluate(migrated_url, tmp_path, first.cursor)
    assert len(webhook) == 1, "an ongoing critical concern is alerted once"
    assert second.asset_events == [], "nothing changed: nothing reported"

    monkeypatch.setenv("BANGKOK_DB_BUDGET", "10GB")
    third = _evaluate(migrated_url, tmp_path, second.cursor)
    assert [(a["concern"], a["status"]) for a in webhook][1:] == [("database_size", "resolved")]
    assert third.skip_reason and third.skip_reason.skip_message == "health: all ok"
    changed = [(e.check_name, e.passed) for e in third.asset_events]  # type: ignore[union-attr]
    assert changed == [("database_size", True)]
    with psycopg.connect(migrated_url) as conn:
        rows = conn.execute(
            "SELECT concern, status, alerted FROM health_alerts ORDER BY alert_id"
        ).fetchall()
    assert rows == [("database_size", "critical", True), ("database_size", "resolved", True)]
