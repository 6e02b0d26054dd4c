"""Readings in PostgreSQL's binary formats, built and read with numpy: no Python object per row.

Binary COPY of (timestamptz, smallint, real) is 28 bytes a row and needs no text parsing on the
server; numpy writes the big-endian tuples of a whole batch at once. Reading a month back (for
its archive) goes the other way through one blob of send-format (timestamptz, real) pairs per
sensor, because COPY TO would hand Python one message per row.
"""

from collections.abc import Iterator

import numpy as np
import polars as pl

HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
TRAILER = (-1).to_bytes(2, "big", signed=True)
_POSTGRES_EPOCH_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z in Unix microseconds

_TUPLE = np.dtype(
    [
        ("fields", ">i2"),
        ("ts_len", ">i4"),
        ("ts", ">i8"),
        ("sensor_len", ">i4"),
        ("sensor_id", ">i2"),
        ("value_len", ">i4"),
        ("value", ">f4"),
    ]
)


def encode(readings: pl.DataFrame) -> bytes:
    """Tuples of (ts, sensor_id, value) in binary COPY format, without header or trailer."""
    rows = np.empty(readings.height, dtype=_TUPLE)
    rows["fields"] = 3
    rows["ts_len"] = 8
    rows["sensor_len"] = 2
    rows["value_len"] = 4
    rows["ts"] = readings["ts"].dt.epoch("us").to_numpy() - _POSTGRES_EPOCH_US
    rows["sensor_id"] = readings["sensor_id"].to_numpy()
    rows["value"] = readings["value"].to_numpy()
    return rows.tobytes()


def copy_stream(batches: Iterator[pl.DataFrame]) -> Iterator[bytes]:
    """A complete binary COPY stream: header, every batch's tuples, trailer."""
    yield HEADER
    for batch in batches:
        if batch.height:
            yield encode(batch)
    yield TRAILER


_PAIR = np.dtype([("ts", ">i8"), ("value", ">f4")])  # timestamptz_send || float4send


def decode_pairs(sensor_id: int, pairs: bytes) -> pl.DataFrame:
    """ts, sensor_id, value from one sensor's blob of (timestamptz, real) send-format pairs."""
    rows = np.frombuffer(pairs, dtype=_PAIR)
    return pl.DataFrame(
        {
            "ts": pl.Series("ts", rows["ts"].astype(np.int64) + _POSTGRES_EPOCH_US).cast(
                pl.Datetime("us", "UTC")
            ),
            "sensor_id": pl.Series("sensor_id", np.full(rows.size, sensor_id, dtype=np.int16)),
            "value": pl.Series("value", rows["value"].astype(np.float32)),
        }
    ).with_columns(pl.col("ts").dt.convert_time_zone("Asia/Bangkok"))
