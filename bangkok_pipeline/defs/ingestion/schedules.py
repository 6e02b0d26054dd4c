"""The nightly schedule: at 02:00 Bangkok, reload every building-month whose source changed since
its last successful load, and each building's latest month with data (the one still growing)."""

import dagster as dg

from bangkok_pipeline.core import settings
from bangkok_pipeline.db.queries import query
from bangkok_pipeline.defs.ingestion.jobs import ingest_month_job
from bangkok_pipeline.defs.ingestion.sensors import (
    building_sources,
    missing_folder,
    month_run_requests,
)
from bangkok_pipeline.defs.resources import PostgresResource, SourceDirectory
from bangkok_pipeline.source.state import DirectoryState, scan_directory


@dg.schedule(
    job=ingest_month_job,
    cron_schedule="0 2 * * *",
    execution_timezone="Asia/Bangkok",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly catch-up for every registered building: months changed since their "
    "last successful load, and the latest month.",
)
def nightly_ingest_schedule(
    context: dg.ScheduleEvaluationContext, source: SourceDirectory, database: PostgresResource
) -> dg.SkipReason | list[dg.RunRequest]:
    tick = (
        context.scheduled_execution_time.strftime("%Y-%m-%d")
        if (context.scheduled_execution_time)
        else "manual"
    )
    requests: list[dg.RunRequest] = []
    problems: list[str] = []
    for building, folder in building_sources(context.instance, database, source):
        if not folder.is_dir():
            problems.append(missing_folder(building.name, folder))
            continue
        now = scan_directory(folder, DirectoryState(), settings.max_source_bytes())
        with database.connection() as conn:
            loaded = dict(
                conn.execute(
                    query("select_loaded_month_digests"), {"building": building.building_id}
                ).fetchall()
            )
        digests = now.state.month_digests()
        due = {month: digest for month, digest in digests.items() if loaded.get(month) != digest}
        if digests:
            latest = max(digests)
            due[latest] = digests[latest]
        found, outside = month_run_requests(building.name, due, prefix=f"nightly:{tick}:")
        requests += found
        problems += [f"{building.name}: {problem}" for problem in now.problems] + outside
    for problem in problems:
        context.log.warning(problem)
    return requests or dg.SkipReason(
        "; ".join(problems) or "no month changed since its last successful load"
    )
