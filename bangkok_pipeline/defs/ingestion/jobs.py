"""The month ingestion job: every ingestion asset and check for one building-month partition."""

import dagster as dg

ingest_month_job = dg.define_asset_job(
    "ingest_month",
    # partitioned by building × month
    selection=dg.AssetSelection.groups("raw", "validated", "warehouse"),
    description="Read, validate and load one building's month (a backfill runs it per "
    "building-month).",
)
