"""Sensors: new or grown source files trigger loads of exactly the months that changed, every
failed run is recorded (and posted to ALERT_WEBHOOK_URL when set), and runs whose process died
are finished so that their pool slots do not block later loads."""

from datetime import UTC, datetime

import dagster as dg

from bangkok_pipeline.core import settings
from bangkok_pipeline.defs.ingestion.jobs import ingest_month_job
from bangkok_pipeline.defs.ingestion.partitions import monthly_partitions
from bangkok_pipeline.defs.resources import PostgresResource, SourceDirectory
from bangkok_pipeline.ops.alerts import RunFailure, post_webhook, record_failure
from bangkok_pipeline.runtime.headless import sweep_abandoned_runs
from bangkok_pipeline.source.state import DirectoryState, scan_directory

SOURCE_DIGEST_TAG = "bangkok/source_digest"


def month_run_requests(
    changed: dict[str, str], prefix: str
) -> tuple[list[dg.RunRequest], list[str]]:
    """Run requests for the changed months that are partitions; the others, to report."""
    known = set(monthly_partitions.get_partition_keys())
    requests = [
        dg.RunRequest(
            partition_key=month,
            run_key=f"{prefix}{month}:{digest}",
            tags={SOURCE_DIGEST_TAG: digest},
        )
        for month, digest in sorted(changed.items())
        if month in known
    ]
    outside = [
        f"{month}: source rows for a month outside the partitions "
        f"({settings.DATA_FIRST_MONTH}..{settings.last_month()}); set CUBEMS_LAST_MONTH to load it"
        for month in sorted(changed)
        if month not in known
    ]
    return requests, outside


@dg.sensor(
    job=ingest_month_job,
    minimum_interval_seconds=settings.sensor_interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches CUBEMS_SOURCE_DIR; requests a load of every month whose bytes changed.",
)
def source_files_sensor(
    context: dg.SensorEvaluationContext, source: SourceDirectory
) -> dg.SensorResult:
    directory = source.directory()
    if not directory.is_dir():
        return dg.SensorResult(
            skip_reason=f"source directory {directory} does not exist (CUBEMS_SOURCE_DIR)",
            cursor=context.cursor,
        )
    scan = scan_directory(
        directory, DirectoryState.from_json(context.cursor), settings.max_source_bytes()
    )
    requests, outside = month_run_requests(scan.changed, prefix="")
    for problem in scan.problems + outside:
        context.log.warning(problem)
    if not requests:
        reason = "; ".join(scan.problems + outside) or "no source file changed"
        return dg.SensorResult(skip_reason=reason, cursor=scan.state.to_json())
    context.log.info(f"requesting {', '.join(r.partition_key or '' for r in requests)}")
    return dg.SensorResult(run_requests=requests, cursor=scan.state.to_json())


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records every failed run in table run_failures; posts it to ALERT_WEBHOOK_URL.",
)
def run_failure_alert_sensor(
    context: dg.RunFailureSensorContext, database: PostgresResource
) -> None:
    run = context.dagster_run
    steps = [event.step_key for event in context.get_step_failure_events() if event.step_key]
    failure = RunFailure(
        run_id=run.run_id,
        job_name=run.job_name,
        partition_key=run.tags.get("dagster/partition"),
        failed_steps=steps,
        error_summary=(context.failure_event.message or "run failed")[:2000],
        failed_at=datetime.now(UTC),  # the sensor runs within seconds of the failure
    )
    url = settings.alert_webhook_url()
    alerted = post_webhook(url, failure) if url else False
    with database.connection(autocommit=True) as conn:
        record_failure(conn, failure, alerted)


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks failed the runs whose process died (kill -9, a crash) and frees their "
    "slots in pool bangkok_database, which Dagster would keep for them and make later loads wait.",
)
def abandoned_runs_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    swept = sweep_abandoned_runs(context.instance)
    for run in swept:
        context.log.warning(run.line)
    return dg.SkipReason("; ".join(run.line for run in swept) or "no abandoned runs")
