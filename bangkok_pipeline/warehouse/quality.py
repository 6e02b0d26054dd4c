"""Checks of a loaded month against the ledger and against itself; SQL lives in files."""

from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.db.queries import query
from bangkok_pipeline.transform.days import SLOTS
from bangkok_pipeline.transform.fingerprint import database_fingerprints, mismatched_sensors
from bangkok_pipeline.warehouse import compression, partitions
from bangkok_pipeline.warehouse.partitions import DAILY, DAYS, HOURLY


def _partition(table_name: str) -> sql.Identifier:
    return sql.Identifier("partitions", table_name)


def partition_exists(conn: psycopg.Connection, month: Month) -> bool:
    """Whether the month's readings are attached, as rows or compressed."""
    return compression.month_readings(conn, month) is not None


def _readings(conn: psycopg.Connection, month: Month) -> sql.Composable:
    readings = compression.month_readings(conn, month)
    if readings is None:
        raise RuntimeError(f"{month} has no readings attached")
    return readings


def reconcile_live(conn: psycopg.Connection, month: Month, run_id: str) -> list[int]:
    """Recompute the live partition's per-sensor figures into the ledger; return mismatches."""
    readings = sql.SQL("{} AS live").format(_readings(conn, month))
    database = database_fingerprints(conn, readings)
    ledger = {
        sensor: (n, total, int(h))
        for sensor, n, total, h in conn.execute(
            query("select_reconciliation_ledger"), {"month": month}
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


def coverage(conn: psycopg.Connection, month: Month) -> list[SensorCoverage]:
    """Present vs expected minutes and gap segments of every sensor of the month."""
    rows = conn.execute(query("select_coverage"), {"month": month}).fetchall()
    return [SensorCoverage(*row) for row in rows]


def daily_minutes(conn: psycopg.Connection, month: Month) -> tuple[list[int], np.ndarray]:
    """The month's sensors (ids, ascending) and, per sensor and day, the share of its 1,440
    minutes present (0 for a day without readings)."""
    first_day, next_month = month.first_day, month.next().first_day
    rows = conn.execute(
        query("select_daily_minutes"), {"first_day": first_day, "next_month": next_month}
    ).fetchall()
    sensors = sorted({int(sensor) for sensor, _, _ in rows})
    index = {sensor: i for i, sensor in enumerate(sensors)}
    shares = np.zeros((len(sensors), (next_month - first_day).days))
    for sensor, day, present in rows:
        shares[index[int(sensor)], (day - first_day).days] = present / SLOTS
    return sensors, shares


def aggregate_mismatches(
    conn: psycopg.Connection, month: Month, sample_size: int = 8
) -> list[tuple[str, int, str]]:
    """(grain, sensor, bucket) of stored aggregates that differ from a recomputation from raw."""
    hourly: sql.Composable = _partition(HOURLY.name(month))
    if partitions.attached(conn, DAYS, month):  # its hours: the day rows' hourly summaries
        low, high = month.bounds
        hourly = sql.SQL("public.hourly_stats_between({}, {})").format(
            sql.Literal(low), sql.Literal(high)
        )
    statement = sql.SQL(query("select_aggregate_mismatches")).format(
        readings=_readings(conn, month),
        hourly=hourly,
        daily=_partition(DAILY.name(month)),
    )
    salt = month.year * 100 + month.number
    return conn.execute(statement, {"salt": salt, "sample_size": sample_size}).fetchall()
