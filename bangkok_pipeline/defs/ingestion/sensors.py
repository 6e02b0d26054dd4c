"""Sensors: new or grown source files of any registered building trigger loads of exactly the
building-months that changed, every failed run is recorded (and posted to ALERT_WEBHOOK_URL when
set), and runs whose process died are finished so that their pool slots do not block later
loads."""

from datetime import UTC, datetime

import dagster as dg

from bangkok_pipeline.core import settings
from bangkok_pipeline.defs.ingestion.jobs import ingest_month_job
from bangkok_pipeline.defs.ingestion.partitions import (
    add_building_partitions,
    monthly_partitions,
    partition_key,
)
from bangkok_pipeline.defs.resources import PostgresResource, SourceDirectory
from bangkok_pipeline.ops.alerts import RunFailure, post_webhook, record_failure
from bangkok_pipeline.runtime.headless import sweep_abandoned_runs
from bangkok_pipeline.source.layout import BUILDING
from bangkok_pipeline.source.state import (
    DirectoryState,
    Scan,
    building_states_from_json,
    building_states_to_json,
    scan_directory,
)
from bangkok_pipeline.warehouse import buildings

SOURCE_DIGEST_TAG = "bangkok/source_digest"


def scan_buildings(
    instance: dg.DagsterInstance,
    database: PostgresResource,
    source: SourceDirectory,
    previous: dict[str, DirectoryState],
) -> tuple[list[tuple[buildings.Building, Scan]], list[str]]:
    """Every registered building's folder (CU-BEMS's: the configured one) scanned from its
    `previous` state, each building made a partition of the building dimension if it is not one
    yet; and what to report, each line naming its building (a missing folder among them)."""
    with database.connection() as conn:
        registered = buildings.list_buildings(conn)
    add_building_partitions(instance, [b.name for b in registered])
    scans, problems = [], []
    for building in registered:
        folder = buildings.source_folder(building, source.directory())
        if not folder.is_dir():
            where = " (CUBEMS_SOURCE_DIR)" if building.name == BUILDING else ""
            problems.append(f"{building.name}: source directory {folder} does not exist{where}")
            continue
        scan = scan_directory(
            folder, previous.get(building.name, DirectoryState()), settings.max_source_bytes()
        )
        scans.append((building, scan))
        problems += [f"{building.name}: {problem}" for problem in scan.problems]
    return scans, problems


def month_run_requests(
    building: str, changed: dict[str, str], prefix: str
) -> tuple[list[dg.RunRequest], list[str]]:
    """Run requests for the building's changed months that are partitions; the others, to
    report."""
    known = set(monthly_partitions.get_partition_keys())
    requests = [
        dg.RunRequest(
            partition_key=partition_key(building, month),
            run_key=f"{prefix}{partition_key(building, month)}:{digest}",
            tags={SOURCE_DIGEST_TAG: digest},
        )
        for month, digest in sorted(changed.items())
        if month in known
    ]
    outside = [
        f"{building}: {month}: source rows for a month outside the partitions "
        f"({settings.DATA_FIRST_MONTH}..{settings.last_month()}); set CUBEMS_LAST_MONTH to load it"
        for month in sorted(changed)
        if month not in known
    ]
    return requests, outside


@dg.sensor(
    job=ingest_month_job,
    minimum_interval_seconds=settings.sensor_interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches the folder of every registered building (CU-BEMS's: CUBEMS_SOURCE_DIR); "
    "requests a load of every building-month whose bytes changed.",
)
def source_files_sensor(
    context: dg.SensorEvaluationContext, source: SourceDirectory, database: PostgresResource
) -> dg.SensorResult:
    states = building_states_from_json(context.cursor, BUILDING)
    scans, problems = scan_buildings(context.instance, database, source, states)
    requests: list[dg.RunRequest] = []
    for building, scan in scans:
        states[building.name] = scan.state
        found, outside = month_run_requests(building.name, scan.changed, prefix="")
        requests += found
        problems += outside
    for problem in problems:
        context.log.warning(problem)
    cursor = building_states_to_json(states)
    if not requests:
        return dg.SensorResult(
            skip_reason="; ".join(problems) or "no source file changed", cursor=cursor
        )
    context.log.info(f"requesting {', '.join(r.partition_key or '' for r in requests)}")
    return dg.SensorResult(run_requests=requests, cursor=cursor)


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
