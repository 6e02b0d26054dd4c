"""Fingerprints (`transform.fingerprint`): the Polars figures of a frame equal PostgreSQL's
(`select_reading_fingerprints.sql`) over the same rows, whatever their order, and one changed
bit of a value is a mismatch."""

from collections.abc import Iterator
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import psycopg
import pytest
from psycopg import sql

from bangkok_pipeline.core.settings import BANGKOK_TZ
from bangkok_pipeline.transform.fingerprint import (
    as_figures,
    database_fingerprints,
    frame_fingerprints,
    mismatched_sensors,
)
from bangkok_pipeline.warehouse.pgcopy import copy_stream

TABLE = sql.Identifier("readings")


def _frame(seed: int = 7) -> pl.DataFrame:
    """Three sensors, two days of minutes across a month bound, values with fractions."""
    rng = np.random.default_rng(seed)
    start = datetime(2019, 2, 28, 0, 0, tzinfo=BANGKOK_TZ)
    minutes = [start + timedelta(minutes=m) for m in range(0, 2 * 24 * 60, 7)]
    rows = [(ts, sensor) for sensor in (1, 2, 900) for ts in minutes]
    values = rng.normal(20.0, 50.0, len(rows)).astype(np.float32)
    return pl.DataFrame(
        {
            "ts": pl.Series([r[0] for r in rows], dtype=pl.Datetime("us", "Asia/Bangkok")),
            "sensor_id": pl.Series([r[1] for r in rows], dtype=pl.Int32),
            "value": pl.Series(values, dtype=pl.Float32),
        }
    )


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TEMP TABLE readings (ts timestamptz, sensor_id integer, value real)")
        yield conn


def _copy(conn: psycopg.Connection, frame: pl.DataFrame) -> None:
    conn.execute("TRUNCATE readings")
    with conn.cursor().copy("COPY readings FROM STDIN (FORMAT BINARY)") as copy:
        for chunk in copy_stream(iter([frame])):
            copy.write(chunk)


@pytest.mark.integration
def test_frame_fingerprints_equal_the_database_ones(conn: psycopg.Connection) -> None:
    frame = _frame()
    _copy(conn, frame)
    polars = as_figures(frame_fingerprints(frame))
    database = database_fingerprints(conn, TABLE)
    assert sorted(polars) == sorted(database) == [1, 2, 900]
    for sensor, (n, total, digest) in polars.items():
        assert (n, digest) == (database[sensor][0], database[sensor][2])
        assert total == pytest.approx(database[sensor][1], rel=1e-12)
    assert mismatched_sensors(polars, database) == []


@pytest.mark.integration
def test_row_order_changes_no_fingerprint(conn: psycopg.Connection) -> None:
    frame = _frame()
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=3)
    assert not shuffled.equals(frame)
    _copy(conn, shuffled)
    ordered = as_figures(frame_fingerprints(frame))
    assert mismatched_sensors(as_figures(frame_fingerprints(shuffled)), ordered) == []
    assert mismatched_sensors(ordered, database_fingerprints(conn, TABLE)) == []


@pytest.mark.integration
def test_one_changed_bit_is_a_mismatch_of_its_sensor(conn: psycopg.Connection) -> None:
    frame = _frame()
    bits = frame["value"].to_numpy().view(np.int32).copy()
    row = frame["sensor_id"].to_list().index(2)
    bits[row] ^= 1  # the lowest mantissa bit: the sum barely moves, the hash does
    changed = frame.with_columns(pl.Series("value", bits.view(np.float32), dtype=pl.Float32))
    _copy(conn, changed)
    assert mismatched_sensors(
        as_figures(frame_fingerprints(frame)), database_fingerprints(conn, TABLE)
    ) == [2]
