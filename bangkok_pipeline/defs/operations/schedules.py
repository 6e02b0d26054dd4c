"""Daily maintenance, Asia/Bangkok: premake at 01:00, retention at 03:00 (after the 02:00
nightly ingest, so the newest month is in when the retention window is counted), compression at
04:00 (after retention, so months about to be archived are not compressed first)."""

import dagster as dg

from bangkok_pipeline.defs.operations.jobs import (
    compression_job,
    partition_maintenance_job,
    retention_job,
)

partition_maintenance_schedule = dg.ScheduleDefinition(
    job=partition_maintenance_job,
    cron_schedule="0 1 * * *",
    execution_timezone="Asia/Bangkok",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily premake of the next months' partitions (idempotent).",
)

retention_schedule = dg.ScheduleDefinition(
    job=retention_job,
    cron_schedule="0 3 * * *",
    execution_timezone="Asia/Bangkok",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily retention: a no-op unless BANGKOK_RETAIN_RAW_MONTHS or "
    "BANGKOK_RETAIN_AGGREGATE_MONTHS is set.",
)

compression_schedule = dg.ScheduleDefinition(
    job=compression_job,
    cron_schedule="0 4 * * *",
    execution_timezone="Asia/Bangkok",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily compression by BANGKOK_COMPRESS_AFTER_MONTHS (a no-op when off).",
)
