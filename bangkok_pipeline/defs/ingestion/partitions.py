"""The one month partitioning shared by every ingestion asset, job, sensor and schedule."""

import dagster as dg

from bangkok_pipeline import settings
from bangkok_pipeline.lib.months import next_month, parse_month

monthly_partitions = dg.MonthlyPartitionsDefinition(
    start_date=f"{settings.DATA_FIRST_MONTH}-01",
    end_date=next_month(parse_month(settings.last_month())).isoformat(),
    timezone="Asia/Bangkok",
    fmt="%Y-%m",
)
