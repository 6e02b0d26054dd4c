"""The health sensor: every BANGKOK_HEALTH_INTERVAL_SECONDS it evaluates the database's health,
reports an asset-check evaluation on `postgres_database` for every concern whose status changed
(all of them the first time; so the UI shows them without a run, and the event log does not grow
by eight events every few minutes), and alerts through the automation work's path (table
health_alerts, and ALERT_WEBHOOK_URL when set) when a concern turns critical, and again when it
recovers.

Its cursor keeps each concern's last status, the concerns that were critical (so an alert is sent
once per episode) and the source directory's state (so unchanged source files are not read
again). When Dagster's own storage is on the same server, a stopped server stops the
daemon too: `bangkok-pipeline health` is what reports that case.
"""

import json
import logging
from dataclasses import dataclass, field

import dagster as dg
import psycopg

from bangkok_pipeline.core import settings
from bangkok_pipeline.db.connection import DatabaseUnavailable, TransactionPooler, connect
from bangkok_pipeline.defs.operations.assets import DATABASE
from bangkok_pipeline.defs.operations.checks import check_fields
from bangkok_pipeline.defs.resources import LayersResource, PostgresResource, SourceDirectory
from bangkok_pipeline.ops import health
from bangkok_pipeline.ops.alerts import HealthAlert, post_health_alert, record_health_alert
from bangkok_pipeline.source.state import DirectoryState


@dataclass
class HealthCursor:
    critical: dict[str, str] = field(default_factory=dict)  # concern -> message when raised
    source: str | None = None  # DirectoryState JSON
    statuses: dict[str, str] = field(default_factory=dict)  # concern -> last reported status

    @classmethod
    def from_json(cls, text: str | None) -> "HealthCursor":
        if not text:
            return cls()
        raw = json.loads(text)
        return cls(dict(raw.get("critical", {})), raw.get("source"), dict(raw.get("statuses", {})))

    def to_json(self) -> str:
        return json.dumps(
            {"critical": self.critical, "source": self.source, "statuses": self.statuses},
            sort_keys=True,
        )


def _alert(url: str | None, alerts: list[HealthAlert], log: logging.Logger) -> None:
    """Post each alert (when a webhook is set) and record it (when the database answers)."""
    webhook = settings.alert_webhook_url()
    posted = [post_health_alert(webhook, a) if webhook else False for a in alerts]
    for alert in alerts:
        log.warning(f"health {alert.status}: {alert.concern}: {alert.message}")
    if url is None:
        return
    try:
        with connect(url, attempts=1, autocommit=True) as conn:
            for alert, alerted in zip(alerts, posted, strict=True):
                record_health_alert(conn, alert, alerted)
    except (DatabaseUnavailable, TransactionPooler, psycopg.Error) as error:  # it may be at fault
        log.warning(f"could not record health alerts: {error}")


@dg.sensor(
    minimum_interval_seconds=settings.health_interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Evaluates database health (the checks of postgres_database) and alerts on "
    "critical findings through health_alerts and ALERT_WEBHOOK_URL.",
)
def database_health_sensor(
    context: dg.SensorEvaluationContext,
    database: PostgresResource,
    source: SourceDirectory,
    layers: LayersResource,
) -> dg.SensorResult:
    cursor = HealthCursor.from_json(context.cursor)
    url, not_running = database.url_to_examine()
    report = health.check_health(
        url,
        source.directory(),
        health.Limits.from_settings(),
        source_state=DirectoryState.from_json(cursor.source),
        not_running=not_running,
        layers_url=layers.store_url(),
    )
    evaluations = [
        dg.AssetCheckEvaluation(
            asset_key=DATABASE,
            check_name=finding.concern,
            **check_fields(finding),
        )
        for finding in report.findings
        if cursor.statuses.get(finding.concern) != finding.status.value
    ]
    critical = {f.concern: f for f in report.critical}
    alerts = [
        HealthAlert(f.concern, "critical", f.message, f.as_dict()["details"])
        for concern, f in critical.items()
        if concern not in cursor.critical
    ] + [
        HealthAlert(concern, "resolved", f"was: {message}", {})
        for concern, message in cursor.critical.items()
        if concern not in critical
    ]
    if alerts:
        _alert(url, alerts, context.log)
    state = report.source_state.to_json() if report.source_state else cursor.source
    kept = {c: cursor.critical.get(c, f.message) for c, f in critical.items()}
    summary = ", ".join(
        f"{f.concern} {f.status.value}" for f in report.findings if f.status.value != "ok"
    )
    return dg.SensorResult(
        asset_events=evaluations,
        cursor=HealthCursor(
            kept, state, {f.concern: f.status.value for f in report.findings}
        ).to_json(),
        skip_reason=f"health: {summary or 'all ok'}",
    )
