"""The one month partitioning shared by every ingestion asset, job, sensor and schedule.

Keys are `YYYY-MM`; a month starts at 00:00 Asia/Bangkok on its first day.
"""

import dagster as dg

from bangkok_pipeline.core import settings
from bangkok_pipeline.core.months import Month

monthly_partitions = dg.MonthlyPartitionsDefinition(
    start_date=settings.DATA_FIRST_MONTH,
    end_date=str(Month.parse(settings.last_month()).next()),
    timezone="Asia/Bangkok",
    fmt="%Y-%m",
)

# One run per month: each month is one memory-bounded load (~500 MB peak) that can fail, retry
# and be re-run on its own; the run queue (dagster.yaml: 2 runs, one per month) gives two-way
# parallelism on two cores, and the `bangkok_database` pool lets one COPY/swap step run at a time
# while the next month parses. A single-run backfill would hold 18 months in one run: one failure
# would redo everything, and nothing would overlap.
month_backfill_policy = dg.BackfillPolicy.multi_run(max_partitions_per_run=1)
