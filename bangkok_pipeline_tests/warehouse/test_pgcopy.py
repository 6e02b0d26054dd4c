"""Binary COPY encoding (`warehouse.pgcopy`): a frame written with `copy_stream` into a real
table reads back exactly, edge values and month-bound timestamps included, and `decode_pairs`
reads the send-format pairs of the same rows back into the same frame."""

from collections.abc import Iterator
from datetime import UTC, datetime

import polars as pl
import psycopg
import pytest

from bangkok_pipeline.core.settings import BANGKOK_TZ
from bangkok_pipeline.warehouse.pgcopy import copy_stream, decode_pairs, encode

FLOAT32_MAX = 3.4028234663852886e38

# The first and last minute of February 2019 and of December 2018 in Bangkok (UTC+7: the
# first minute of a month is the previous day in UTC), and one before PostgreSQL's 2000 epoch.
TIMESTAMPS = [
    datetime(2019, 2, 1, 0, 0, tzinfo=BANGKOK_TZ),
    datetime(2019, 2, 28, 23, 59, tzinfo=BANGKOK_TZ),
    datetime(2018, 12, 1, 0, 0, tzinfo=BANGKOK_TZ),
    datetime(2018, 12, 31, 23, 59, 59, 999999, tzinfo=BANGKOK_TZ),
    datetime(1999, 12, 31, 23, 59, tzinfo=UTC),
]
VALUES = [0.0, -1.5, FLOAT32_MAX, -FLOAT32_MAX, 1.0e-45, 21.299999237060547]
SENSORS = [1, 32767, 2_147_483_647, -2_147_483_648]


def _frame() -> pl.DataFrame:
    rows = [
        (ts, sensor, VALUES[(i + j) % len(VALUES)])
        for i, ts in enumerate(TIMESTAMPS)
        for j, sensor in enumerate(SENSORS)
    ]
    return pl.DataFrame(
        {
            "ts": pl.Series([r[0] for r in rows], dtype=pl.Datetime("us", "UTC")),
            "sensor_id": pl.Series([r[1] for r in rows], dtype=pl.Int32),
            "value": pl.Series([r[2] for r in rows], dtype=pl.Float32),
        }
    ).with_columns(pl.col("ts").dt.convert_time_zone("Asia/Bangkok"))


@pytest.fixture
def copied(database_url: str) -> Iterator[tuple[pl.DataFrame, psycopg.Connection]]:
    """The frame, and a connection whose temporary table `readings` holds it."""
    frame = _frame()
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TEMP TABLE readings (ts timestamptz, sensor_id integer, value real)")
        with conn.cursor().copy("COPY readings FROM STDIN (FORMAT BINARY)") as copy:
            # two batches and an empty one: the stream has one header and one trailer
            for chunk in copy_stream(iter([frame.head(4), frame.clear(), frame.slice(4)])):
                copy.write(chunk)
        yield frame, conn


def _key(row: tuple[datetime, int, float]) -> tuple[int, datetime]:
    return row[1], row[0]


@pytest.mark.integration
def test_a_frame_copied_in_binary_reads_back_exactly(
    copied: tuple[pl.DataFrame, psycopg.Connection],
) -> None:
    frame, conn = copied
    # float8: the exact float4 value (its text form is the shortest decimal that rounds to it)
    back = conn.execute("SELECT ts, sensor_id, value::float8 FROM readings").fetchall()
    bits = conn.execute(
        "SELECT sensor_id, ts, encode(float4send(value), 'hex') FROM readings"
    ).fetchall()
    assert sorted(back, key=_key) == sorted(frame.rows(), key=_key)
    by_key = {(sensor, ts): hexbits for sensor, ts, hexbits in bits}
    for ts, sensor, value in frame.rows():
        as_float4 = pl.Series([value], dtype=pl.Float32).to_numpy().astype(">f4")
        assert by_key[(sensor, ts)] == as_float4.tobytes().hex()


@pytest.mark.integration
def test_send_format_pairs_decode_to_the_same_frame(
    copied: tuple[pl.DataFrame, psycopg.Connection],
) -> None:
    frame, conn = copied
    blobs = conn.execute(
        "SELECT sensor_id, string_agg(timestamptz_send(ts) || float4send(value), ''::bytea "
        "ORDER BY ts) FROM readings GROUP BY sensor_id ORDER BY sensor_id"
    ).fetchall()
    decoded = pl.concat([decode_pairs(sensor, bytes(blob)) for sensor, blob in blobs])
    expected = frame.sort("sensor_id", "ts")
    assert decoded.schema == expected.schema
    assert decoded.equals(expected)


def test_smallint_ids_of_archives_written_before_0010_encode_as_the_integer_column_takes() -> None:
    """Archives written before migration 0010 hold sensor_id as Int16; restoring one COPYs it
    into the integer column: the same bytes as the same readings with Int32 ids."""
    frame = _frame().filter(pl.col("sensor_id").is_between(1, 32767))
    old = frame.with_columns(pl.col("sensor_id").cast(pl.Int16))
    assert encode(old) == encode(frame) and len(encode(frame)) == 30 * frame.height
