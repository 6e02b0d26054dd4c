"""The one partitioning shared by every ingestion asset, check, job, sensor and schedule: a
building (dynamic: filled by `buildings add`, a load and the source sensor from table buildings)
by a month.

Keys are `<building name>|YYYY-MM` (Dagster orders dimensions by name); a month starts at 00:00
Asia/Bangkok on its first day.
"""

from collections.abc import Sequence
from typing import NamedTuple

import dagster as dg
import psycopg

from bangkok_pipeline.core import settings
from bangkok_pipeline.core.months import Month
from bangkok_pipeline.warehouse import buildings

monthly_partitions = dg.MonthlyPartitionsDefinition(
    start_date=settings.DATA_FIRST_MONTH,
    end_date=str(Month.parse(settings.last_month()).next()),
    timezone="Asia/Bangkok",
    fmt="%Y-%m",
)
BUILDINGS = "buildings"  # the building dimension's dynamic partitions, in the Dagster instance
building_partitions = dg.DynamicPartitionsDefinition(name=BUILDINGS)
building_month_partitions = dg.MultiPartitionsDefinition(
    {"building": building_partitions, "month": monthly_partitions}
)

# One run per building-month: each is one memory-bounded load (~500 MB peak) that can fail, retry
# and be re-run on its own; the run queue (dagster.yaml: 2 runs, one per partition) gives two-way
# parallelism on two cores, and the `bangkok_database` pool lets one COPY/swap step run at a time
# while the next month parses. A single-run backfill would hold many months in one run: one
# failure would redo everything, and nothing would overlap.
month_backfill_policy = dg.BackfillPolicy.multi_run(max_partitions_per_run=1)


class BuildingMonth(NamedTuple):
    building: str  # the building's name (table buildings)
    month: Month


def partition_key(building: str, month: Month | str) -> dg.MultiPartitionKey:
    """The partition of `building`'s `month`."""
    return dg.MultiPartitionKey({"building": building, "month": str(month)})


def building_month(key: str) -> BuildingMonth:
    """The building and month a partition key names."""
    keys = building_month_partitions.get_partition_key_from_str(key).keys_by_dimension
    return BuildingMonth(keys["building"], Month.parse(keys["month"]))


def registered_building(conn: psycopg.Connection, key: str) -> tuple[buildings.Building, Month]:
    """The registered building and the month a partition key names; a building nobody
    registered fails the step in one line, without retries."""
    named = building_month(key)
    try:
        return buildings.named(conn, named.building), named.month
    except buildings.BuildingError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None


def add_building_partitions(instance: dg.DagsterInstance, names: Sequence[str]) -> None:
    """Make `names` partitions of the building dimension (those that are already stay)."""
    known = set(instance.get_dynamic_partitions(BUILDINGS))
    missing = [name for name in names if name not in known]
    if missing:
        instance.add_dynamic_partitions(BUILDINGS, missing)
