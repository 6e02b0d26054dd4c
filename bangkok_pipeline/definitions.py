"""The single place where the pipeline's Dagster definitions are assembled."""

import dagster as dg

from bangkok_pipeline.defs.ingestion.assets import (
    load_month_partitions,
    raw_readings,
    validated_readings,
)
from bangkok_pipeline.defs.ingestion.checks import ingestion_checks
from bangkok_pipeline.defs.ingestion.jobs import ingest_month_job
from bangkok_pipeline.defs.ingestion.schedules import nightly_ingest_schedule
from bangkok_pipeline.defs.ingestion.sensors import (
    abandoned_runs_sensor,
    run_failure_alert_sensor,
    source_files_sensor,
)
from bangkok_pipeline.defs.operations.assets import postgres_database
from bangkok_pipeline.defs.operations.checks import operations_checks
from bangkok_pipeline.defs.operations.jobs import (
    compression_job,
    database_health_job,
    partition_maintenance_job,
    retention_job,
)
from bangkok_pipeline.defs.operations.schedules import (
    compression_schedule,
    partition_maintenance_schedule,
    retention_schedule,
)
from bangkok_pipeline.defs.operations.sensors import database_health_sensor
from bangkok_pipeline.defs.resources import LayersResource, PostgresResource, SourceDirectory

defs = dg.Definitions(
    # Each asset links to the file and line that define it (the UI's "code references").
    assets=dg.with_source_code_references(
        [raw_readings, validated_readings, load_month_partitions, postgres_database]
    ),
    asset_checks=[*ingestion_checks, *operations_checks],
    jobs=[
        ingest_month_job,
        database_health_job,
        partition_maintenance_job,
        retention_job,
        compression_job,
    ],
    sensors=[
        source_files_sensor,
        run_failure_alert_sensor,
        abandoned_runs_sensor,
        database_health_sensor,
    ],
    schedules=[
        nightly_ingest_schedule,
        partition_maintenance_schedule,
        retention_schedule,
        compression_schedule,
    ],
    resources={
        "database": PostgresResource(),
        "source": SourceDirectory(),
        "layers": LayersResource(),
    },
)
