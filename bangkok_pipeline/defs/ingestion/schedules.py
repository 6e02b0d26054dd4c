"""The nightly schedule: at 02:00 Bangkok, reload every building-month whose source changed since
its last successful load, and each building's latest month with data (the one still growing)."""

import dagster as dg

from bangkok_pipeline.db.queries import query
from bangkok_pipeline.defs.ingestion.jobs import ingest_month_job
from bangkok_pipeline.defs.ingestion.sensors import month_run_requests, scan_buildings
from bangkok_pipeline.defs.resources import PostgresResource, SourceDirectory


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
    scans, problems = scan_buildings(context.instance, database, source, {})
    requests: list[dg.RunRequest] = []
    for building, now in scans:
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
        problems += outside
    for problem in problems:
        context.log.warning(problem)
    return requests or dg.SkipReason(
        "; ".join(problems) or "no month changed since its last successful load"
    )
