"""The month ingestion job: every ingestion asset and check for one month partition."""

import dagster as dg

from bangkok_pipeline.defs.ingestion.partitions import monthly_partitions

ingest_month_job = dg.define_asset_job(
    "ingest_month",
    selection=dg.AssetSelection.groups("raw", "validated", "warehouse"),
    partitions_def=monthly_partitions,
    description="Read, validate and load one month (a backfill runs it per month).",
)
