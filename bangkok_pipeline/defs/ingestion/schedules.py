"""The nightly schedule: at 02:00 Bangkok, reload every month whose source changed since its last
successful load, and the latest month with data (the one still growing)."""

import dagster as dg

from bangkok_pipeline.core import settings
from bangkok_pipeline.db.queries import query
from bangkok_pipeline.defs.ingestion.jobs import ingest_month_job
from bangkok_pipeline.defs.ingestion.sensors import month_run_requests
from bangkok_pipeline.defs.resources import PostgresResource, SourceDirectory
from bangkok_pipeline.source.layout import BUILDING_ID
from bangkok_pipeline.source.state import DirectoryState, scan_directory


@dg.schedule(
    job=ingest_month_job,
    cron_schedule="0 2 * * *",
    execution_timezone="Asia/Bangkok",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly catch-up: months changed since their last successful load, and the "
    "latest month.",
)
def nightly_ingest_schedule(
    context: dg.ScheduleEvaluationContext, source: SourceDirectory, database: PostgresResource
) -> dg.SkipReason | list[dg.RunRequest]:
    directory = source.directory()
    if not directory.is_dir():
        return dg.SkipReason(f"source directory {directory} does not exist (CUBEMS_SOURCE_DIR)")
    now = scan_directory(directory, DirectoryState(), settings.max_source_bytes())
    with database.connection() as conn:
        loaded = dict(
            conn.execute(query("select_loaded_month_digests"), {"building": BUILDING_ID}).fetchall()
        )
    digests = now.state.month_digests()
    due = {month: digest for month, digest in digests.items() if loaded.get(month) != digest}
    if digests:
        latest = max(digests)
        due[latest] = digests[latest]
    tick = (
        context.scheduled_execution_time.strftime("%Y-%m-%d")
        if (context.scheduled_execution_time)
        else "manual"
    )
    requests, outside = month_run_requests(due, prefix=f"nightly:{tick}:")
    for problem in now.problems + outside:
        context.log.warning(problem)
    return requests or dg.SkipReason("no month changed since its last successful load")
