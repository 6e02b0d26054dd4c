"""Failed runs and critical health findings: recorded in the database and, if
ALERT_WEBHOOK_URL is set, posted there."""

import json
import logging
import urllib.request
from dataclasses import asdict, dataclass
from datetime import datetime

import psycopg

from bangkok_pipeline.db.queries import query

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunFailure:
    run_id: str
    job_name: str
    partition_key: str | None
    failed_steps: list[str]
    error_summary: str
    failed_at: datetime


def post_webhook(url: str, failure: RunFailure, timeout: float = 10.0) -> bool:
    """POST the failure as JSON; False (logged, never raised) if the endpoint does not take it."""
    return post_json(
        url,
        {"text": f"bangkok_pipeline run failed: {failure.error_summary}", **asdict(failure)},
        timeout,
    )


def post_json(url: str, payload: dict[str, object], timeout: float = 10.0) -> bool:
    """POST one alert as JSON; False (logged, never raised) if the endpoint does not take it."""
    body = json.dumps(payload, default=str).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return 200 <= response.status < 300
    except OSError as error:
        log.warning("alert webhook %s did not take the alert: %s", url.split("?")[0], error)
        return False


def record_failure(conn: psycopg.Connection, failure: RunFailure, alerted: bool) -> None:
    conn.execute(query("insert_run_failure"), {**asdict(failure), "alerted": alerted})


@dataclass(frozen=True)
class HealthAlert:
    concern: str
    status: str  # critical | resolved
    message: str
    details: dict[str, object]


def post_health_alert(url: str, alert: HealthAlert, timeout: float = 10.0) -> bool:
    verb = "is critical" if alert.status == "critical" else "is no longer critical"
    return post_json(
        url,
        {
            "text": f"bangkok_pipeline health: {alert.concern} {verb}: {alert.message}",
            **asdict(alert),
        },
        timeout,
    )


def record_health_alert(conn: psycopg.Connection, alert: HealthAlert, alerted: bool) -> None:
    conn.execute(
        query("insert_health_alert"),
        {**asdict(alert), "details": json.dumps(alert.details, default=str), "alerted": alerted},
    )
