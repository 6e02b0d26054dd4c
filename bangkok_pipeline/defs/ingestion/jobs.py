"""The month ingestion job: every ingestion asset and check for one month partition."""

import dagster as dg

ingest_month_job = dg.define_asset_job(
    "ingest_month",
    selection=dg.AssetSelection.groups("raw", "validated", "warehouse"),  # partitioned by month
    description="Read, validate and load one month (a backfill runs it per month).",
)
