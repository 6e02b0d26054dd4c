"""Checks of a loaded month against the ledger and against itself; SQL lives in files."""

from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.db.queries import query
from bangkok_pipeline.source.layout import BUILDING_ID
from bangkok_pipeline.transform.days import SLOTS
from bangkok_pipeline.transform.fingerprint import database_fingerprints, mismatched_sensors
from bangkok_pipeline.warehouse import compression, partitions
from bangkok_pipeline.warehouse.partitions import DAILY, DAYS, HOURLY, building_bounds


def partition_exists(conn: psycopg.Connection, month: Month, building: int = BUILDING_ID) -> bool:
    """Whether the building-month's readings are attached, as rows or compressed."""
    return compression.month_readings(conn, month, building) is not None


def _readings(conn: psycopg.Connection, month: Month, building: int) -> sql.Composable:
    readings = compression.month_readings(conn, month, building)
    if readings is None:
        raise RuntimeError(f"{month} of building {building} has no readings attached")
    return readings


def _sensors_of(month: Month, building: int) -> dict[str, object]:
    """The query parameters naming the building-month: its month and its block of sensor ids."""
    low, high = building_bounds(building)
    return {"month": month, "low": low, "high": high}


def reconcile_live(
    conn: psycopg.Connection, month: Month, run_id: str, building: int = BUILDING_ID
) -> list[int]:
    """Recompute the live building-month's per-sensor figures into the ledger; return
    mismatches."""
    readings = sql.SQL("{} AS live").format(_readings(conn, month, building))
    database = database_fingerprints(conn, readings)
    ledger = {
        sensor: (n, total, int(h))
        for sensor, n, total, h in conn.execute(
            query("select_reconciliation_ledger"), _sensors_of(month, building)
        ).fetchall()
    }
    with conn.transaction(), conn.cursor() as cursor:
        cursor.executemany(
            query("update_reconciliation_db"),
            [
                {
                    "month": month,
                    "sensor_id": sensor,
                    "run_id": run_id,
                    "db_count": n,
                    "db_sum": total,
                    "db_hash": h,
                }
                for sensor, (n, total, h) in database.items()
            ],
        )
    return mismatched_sensors(ledger, database)


@dataclass(frozen=True)
class SensorCoverage:
    sensor_id: int
    present: int
    expected: int
    gaps: int
    longest_gap_minutes: int

    @property
    def completeness(self) -> float:
        return self.present / self.expected if self.expected else 0.0


def coverage(
    conn: psycopg.Connection, month: Month, building: int = BUILDING_ID
) -> list[SensorCoverage]:
    """Present vs expected minutes and gap segments of every sensor of the building-month."""
    rows = conn.execute(query("select_coverage"), _sensors_of(month, building)).fetchall()
    return [SensorCoverage(*row) for row in rows]


def daily_minutes(
    conn: psycopg.Connection, month: Month, building: int = BUILDING_ID
) -> tuple[list[int], np.ndarray]:
    """The building-month's sensors (ids, ascending) and, per sensor and day, the share of its
    1,440 minutes present (0 for a day without readings)."""
    first_day, next_month = month.first_day, month.next().first_day
    rows = conn.execute(
        query("select_daily_minutes"),
        {**_sensors_of(month, building), "first_day": first_day, "next_month": next_month},
    ).fetchall()
    sensors = sorted({int(sensor) for sensor, _, _ in rows})
    index = {sensor: i for i, sensor in enumerate(sensors)}
    shares = np.zeros((len(sensors), (next_month - first_day).days))
    for sensor, day, present in rows:
        shares[index[int(sensor)], (day - first_day).days] = present / SLOTS
    return sensors, shares


def aggregate_mismatches(
    conn: psycopg.Connection, month: Month, sample_size: int = 8, building: int = BUILDING_ID
) -> list[tuple[str, int, str]]:
    """(grain, sensor, bucket) of the building-month's stored aggregates that differ from a
    recomputation from raw."""
    hourly: sql.Composable = HOURLY.identifier(month, building=building)
    if partitions.attached(conn, DAYS, month, building):  # its hours: the day rows' summaries
        low, high = month.bounds
        hourly = sql.SQL("public.hourly_stats_between({}, {})").format(
            sql.Literal(low), sql.Literal(high)
        )
    statement = sql.SQL(query("select_aggregate_mismatches")).format(
        readings=_readings(conn, month, building),
        hourly=hourly,
        daily=DAILY.identifier(month, building=building),
    )
    salt = month.year * 100 + month.number
    return conn.execute(statement, {"salt": salt, "sample_size": sample_size}).fetchall()
