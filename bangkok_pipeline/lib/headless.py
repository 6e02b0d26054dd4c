"""Materialize month partitions through Dagster from the command line, as the UI would.

The runs go through the `ingest_month` job of the project's Definitions against the persistent
instance (runs, events and asset metadata land in Dagster's PostgreSQL storage and show in the UI).
"""

from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
import psycopg


@dataclass(frozen=True)
class MonthOutcome:
    month: str
    success: bool
    run_id: str
    summary: str


def _summary(conn: psycopg.Connection, run_id: str) -> str:
    row = conn.execute(
        "SELECT rows_loaded, rows_quarantined, rows_read, "
        "extract(epoch FROM finished_at - started_at) FROM load_log "
        "WHERE run_id = %s AND status = 'succeeded' ORDER BY load_id DESC LIMIT 1",
        (run_id,),
    ).fetchone()
    if row is None:
        return "no load recorded"
    loaded, quarantined, lines, seconds = row
    return (
        f"{loaded:,} readings loaded, {quarantined:,} quarantined, from {lines:,} lines "
        f"(database step {float(seconds):.1f} s)"
    )


def _failure(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data:
            error = event.step_failure_data.error
            user = event.step_failure_data.user_failure_data
            text = (user.description if user and user.description else None) or (
                error.message.strip() if error else "failed"
            )
            return f"step {event.step_key} failed: {text}"
    return "failed"


def materialize_months(
    defs: dg.Definitions,
    months: list[str],
    database_url: str,
    report: Callable[[MonthOutcome], None] = lambda outcome: None,
) -> list[MonthOutcome]:
    """Run `ingest_month` for each month in order; report each outcome as it lands."""
    job = defs.resolve_job_def("ingest_month")
    outcomes = []
    with dg.DagsterInstance.get() as instance, psycopg.connect(database_url) as conn:
        for month in months:
            result = job.execute_in_process(
                partition_key=month, instance=instance, raise_on_error=False
            )
            summary = _summary(conn, result.run_id) if result.success else _failure(result)
            outcome = MonthOutcome(month, result.success, result.run_id, summary)
            report(outcome)
            outcomes.append(outcome)
    return outcomes
