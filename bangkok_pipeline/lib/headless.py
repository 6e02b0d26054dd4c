"""Materialize month partitions through Dagster from the command line, as the UI would.

The runs go through the `ingest_month` job of the project's Definitions against the Dagster
instance of the environment (for the CLI: the PostgreSQL-backed one, so runs, events and asset
metadata show in the UI). Each month runs in a fresh child process: a month's load peaks near
500 MB, and memory the allocators keep after one month must not pile up over eighteen.
"""

import multiprocessing
import os
import resource
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg

from bangkok_pipeline import settings

# Progress is our one line per month; Dagster's own console events only at warning and above.
_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class MonthOutcome:
    month: str
    success: bool
    run_id: str
    summary: str
    peak_rss_mb: float


def _summary(database_url: str, run_id: str) -> str:
    with psycopg.connect(database_url) as conn:
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


def _run_config(source: Path, allow_shrink: bool) -> dict[str, Any]:
    """Quiet console, the source directory and the load's guard, as run configuration."""
    return {
        **_QUIET,
        "resources": {"source": {"config": {"path": str(source)}}},
        "ops": {"load_month": {"config": {"allow_shrink": allow_shrink}}},
    }


def _run_month(
    month: str, database_url: str, ephemeral: bool, run_config: dict[str, Any]
) -> MonthOutcome:
    """In the child: one `ingest_month` run for one partition."""
    from bangkok_pipeline.definitions import defs

    job = defs.resolve_job_def("ingest_month")
    instance = dg.DagsterInstance.ephemeral() if ephemeral else dg.DagsterInstance.get()
    with instance:
        result = job.execute_in_process(
            partition_key=month, instance=instance, raise_on_error=False, run_config=run_config
        )
    summary = _summary(database_url, result.run_id) if result.success else _failure(result)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return MonthOutcome(month, result.success, result.run_id, summary, peak)


def materialize_months(
    months: list[str],
    database_url: str,
    source: Path,
    report: Callable[[MonthOutcome], None] = lambda outcome: None,
    ephemeral: bool = False,
    allow_shrink: bool = False,
) -> list[MonthOutcome]:
    """Run `ingest_month` for each month in order, each in a fresh process, reading `source`;
    report each."""
    run_config = _run_config(source, allow_shrink)
    outcomes = []
    for name, value in settings.ALLOCATOR_ENVIRONMENT.items():
        os.environ.setdefault(name, value)  # inherited by the spawned children
    context = multiprocessing.get_context("spawn")
    for month in months:
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            outcome = pool.submit(_run_month, month, database_url, ephemeral, run_config).result()
        report(outcome)
        outcomes.append(outcome)
    return outcomes
