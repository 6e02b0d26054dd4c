"""The single place where the pipeline's Dagster definitions are assembled."""

import dagster as dg

from bangkok_pipeline.defs.ingestion.assets import (
    load_month_partitions,
    raw_readings,
    validated_readings,
)
from bangkok_pipeline.defs.ingestion.checks import ingestion_checks
from bangkok_pipeline.defs.ingestion.jobs import ingest_month_job
from bangkok_pipeline.defs.ingestion.resources import PostgresResource, SourceDirectory
from bangkok_pipeline.defs.ingestion.schedules import nightly_ingest_schedule
from bangkok_pipeline.defs.ingestion.sensors import run_failure_alert_sensor, source_files_sensor

defs = dg.Definitions(
    assets=[raw_readings, validated_readings, load_month_partitions],
    asset_checks=ingestion_checks,
    jobs=[ingest_month_job],
    sensors=[source_files_sensor, run_failure_alert_sensor],
    schedules=[nightly_ingest_schedule],
    resources={"database": PostgresResource(), "source": SourceDirectory()},
)
