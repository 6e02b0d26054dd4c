"""Readings in PostgreSQL's binary formats, built and read with numpy: no Python object per row.

Binary COPY of (timestamptz, integer, real) is 30 bytes a row and needs no text parsing on the
server; numpy writes the big-endian tuples of a whole batch at once. Reading a month back (for
its archive) goes the other way through one blob of send-format (timestamptz, real) pairs per
sensor, because COPY TO would hand Python one message per row.
"""

import hashlib
from collections.abc import Iterator

import numpy as np
import polars as pl

from bangkok_pipeline.transform.days import DayMatrix

HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
TRAILER = (-1).to_bytes(2, "big", signed=True)
_POSTGRES_EPOCH_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z in Unix microseconds
_POSTGRES_EPOCH_DAYS = 10_957  # 2000-01-01 in days since 1970-01-01
_FLOAT4_OID = 700

_TUPLE = np.dtype(
    [
        ("fields", ">i2"),
        ("ts_len", ">i4"),
        ("ts", ">i8"),
        ("sensor_len", ">i4"),
        ("sensor_id", ">i4"),
        ("value_len", ">i4"),
        ("value", ">f4"),
    ]
)


def encode(readings: pl.DataFrame) -> bytes:
    """Tuples of (ts, sensor_id, value) in binary COPY format, without header or trailer."""
    rows = np.empty(readings.height, dtype=_TUPLE)
    rows["fields"] = 3
    rows["ts_len"] = 8
    rows["sensor_len"] = 4
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
            "sensor_id": pl.Series("sensor_id", np.full(rows.size, sensor_id, dtype=np.int32)),
            "value": pl.Series("value", rows["value"].astype(np.float32)),
        }
    ).with_columns(pl.col("ts").dt.convert_time_zone("Asia/Bangkok"))


# A row of sensor_readings_days up to its arrays: (sensor_id, day, n, min, max, sum).
_DAY_PREFIX = np.dtype(
    [
        ("fields", ">i2"),
        ("sensor_len", ">i4"),
        ("sensor_id", ">i4"),
        ("day_len", ">i4"),
        ("day", ">i4"),
        ("n_len", ">i4"),
        ("n", ">i2"),
        ("min_len", ">i4"),
        ("min_value", ">f4"),
        ("max_len", ">i4"),
        ("max_value", ">f4"),
        ("sum_len", ">i4"),
        ("sum_value", ">f8"),
    ]
)
_ARRAY_HEADER = np.dtype(
    [
        ("length", ">i4"),  # of the field: the array's bytes after this word
        ("ndim", ">i4"),
        ("has_nulls", ">i4"),
        ("element_type", ">i4"),
        ("dim", ">i4"),
        ("lower_bound", ">i4"),
    ]
)
_ARRAY_HEADER_BYTES = _ARRAY_HEADER.itemsize - 4  # after the field's length word
_INT2_OID, _FLOAT8_OID = 21, 701
_DAY_FIELDS = 11  # sensor_id, day, n, min, max, sum, vals, hour_n, hour_min, hour_max, hour_sum


def _arrays(values: np.ndarray, present: np.ndarray, oid: int) -> list[bytes]:
    """Each row of `values` (a big-endian dtype) as a one-dimensional array field of a binary
    COPY tuple: its length word, then the array in send format (`array_send`), NULL where not
    `present`."""
    rows, size = present.shape
    width = values.dtype.itemsize
    header = np.zeros(rows, dtype=_ARRAY_HEADER)
    header["length"] = _ARRAY_HEADER_BYTES + 4 * size + width * present.sum(axis=1)
    header["ndim"], header["element_type"], header["dim"], header["lower_bound"] = 1, oid, size, 1
    header["has_nulls"] = (~present).any(axis=1)
    lengths = np.where(present, width, -1).astype(">i4")
    cell = np.dtype([("length", ">i4"), ("value", values.dtype)])
    cells = np.empty((rows, size), dtype=cell)
    cells["length"], cells["value"] = lengths, values
    raw = cells.view(np.uint8).reshape(rows, size, 4 + width)
    keep = np.ones((rows, size, 4 + width), dtype=bool)
    keep[:, :, 4:] = present[:, :, None]  # a NULL is its length word only
    flat = raw[keep].tobytes()
    out, start = [], 0
    for row in range(rows):
        end = start + int(header["length"][row]) - _ARRAY_HEADER_BYTES
        out.append(header[row].tobytes() + flat[start:end])
        start = end
    return out


def encode_days(matrix: DayMatrix) -> Iterator[tuple[bytes, str]]:
    """Each row of the matrix as a binary COPY tuple of sensor_readings_days (without header or
    trailer), with the md5 of its arrays exactly as the server's `array_send` gives them
    (`select_day_digests.sql`)."""
    summaries = matrix.summaries()
    prefix = np.empty(matrix.rows, dtype=_DAY_PREFIX)
    for name, length in (("sensor", 4), ("day", 4), ("n", 2), ("min", 4), ("max", 4), ("sum", 8)):
        prefix[f"{name}_len"] = length
    prefix["fields"] = _DAY_FIELDS
    prefix["sensor_id"] = matrix.sensor_ids
    prefix["day"] = matrix.days - _POSTGRES_EPOCH_DAYS
    prefix["n"] = summaries["n"].to_numpy()
    prefix["min_value"] = summaries["min_value"].to_numpy()
    prefix["max_value"] = summaries["max_value"].to_numpy()
    prefix["sum_value"] = summaries["sum_value"].to_numpy()
    for rows in matrix.blocks():  # a block at a time: a few MB, not the month's 80 MB
        present = matrix.present[rows]
        hours = matrix.hours(rows)
        filled = hours.n > 0
        fields = zip(
            _arrays(matrix.values[rows].astype(">f4"), present, _FLOAT4_OID),
            _arrays(hours.n.astype(">i2"), np.ones_like(filled), _INT2_OID),
            _arrays(hours.low.astype(">f4"), filled, _FLOAT4_OID),
            _arrays(hours.high.astype(">f4"), filled, _FLOAT4_OID),
            _arrays(hours.total.astype(">f8"), filled, _FLOAT8_OID),
            strict=True,
        )
        for row, arrays in zip(range(rows.start, rows.stop), fields, strict=True):
            sent = hashlib.md5()
            for array in arrays:
                sent.update(array[4:])  # the array without the field's length word
            yield prefix[row].tobytes() + b"".join(arrays), sent.hexdigest()


def copy_days_stream(matrix: DayMatrix, digests: list[str]) -> Iterator[bytes]:
    """A complete binary COPY stream of the matrix's day rows; appends each row's md5 of its
    arrays to `digests` as it goes."""
    yield HEADER
    for tuple_bytes, digest in encode_days(matrix):
        digests.append(digest)
        yield tuple_bytes
    yield TRAILER
