"""Per-sensor count, sum and order-independent hash of readings, computed in the same exact
integer arithmetic on a Polars frame as `select_reading_fingerprints.sql` does in PostgreSQL."""

import numpy as np
import polars as pl
import psycopg
from psycopg import sql

from bangkok_pipeline.db.queries import query

MINUTE_MOD = 1_048_576
MULTIPLIER = 1_000_003


def frame_fingerprints(readings: pl.DataFrame) -> pl.DataFrame:
    """sensor_id, n, total, hash for readings with ts (tz-aware), sensor_id and value.

    The value enters the hash as the bits of its float4, exactly as the database stores it.
    """
    as_float4 = readings["value"].cast(pl.Float32).to_numpy()
    bits = pl.Series("bits", as_float4.view(np.int32), dtype=pl.Int32).cast(pl.Int64)
    minute = (pl.col("ts").dt.epoch("s") // 60) % MINUTE_MOD
    return (
        readings.with_columns(bits)
        .group_by("sensor_id")
        .agg(
            n=pl.len().cast(pl.Int64),
            total=pl.col("value").cast(pl.Float32).cast(pl.Float64).sum(),
            hash=(minute * MULTIPLIER + pl.col("bits")).sum(),
        )
        .sort("sensor_id")
    )


Figures = dict[int, tuple[int, float, int]]  # sensor_id -> (count, sum, hash)


def database_fingerprints(conn: psycopg.Connection, table: sql.Composable) -> Figures:
    """The same figures as `frame_fingerprints`, computed by PostgreSQL over a table (or an
    aliased subquery) of (ts, sensor_id, value) readings."""
    rows = conn.execute(
        sql.SQL(query("select_reading_fingerprints")).format(table=table)
    ).fetchall()
    return {sensor: (n, total, int(h)) for sensor, n, total, h in rows}


def as_figures(fingerprints: pl.DataFrame) -> Figures:
    return {
        row["sensor_id"]: (row["n"], row["total"], row["hash"])
        for row in fingerprints.iter_rows(named=True)
    }


def mismatched_sensors(frame: Figures, database: Figures) -> list[int]:
    """Sensors whose count or hash differ, or whose sums differ beyond float rounding."""
    mismatched = []
    for sensor in sorted(frame.keys() | database.keys()):
        f, d = frame.get(sensor), database.get(sensor)
        exact = f is not None and d is not None and f[0] == d[0] and f[2] == d[2]
        if f is None or d is None or not exact or abs(f[1] - d[1]) > 1e-9 * max(1.0, abs(f[1])):
            mismatched.append(sensor)
    return mismatched
