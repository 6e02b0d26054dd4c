"""The one month partitioning shared by every ingestion asset, job, sensor and schedule.

Keys are `YYYY-MM`; a month starts at 00:00 Asia/Bangkok on its first day.
"""

import dagster as dg

from bangkok_pipeline import settings
from bangkok_pipeline.lib.months import month_key, next_month, parse_month

monthly_partitions = dg.MonthlyPartitionsDefinition(
    start_date=settings.DATA_FIRST_MONTH,
    end_date=month_key(next_month(parse_month(settings.last_month()))),
    timezone="Asia/Bangkok",
    fmt="%Y-%m",
)
