"""Day rows (`transform.days`, `pgcopy.encode_days`): a month's readings as one row per sensor and
Bangkok day, built from batches that cut sensors and days anywhere; the figures of the matrix
equal the frame's, and the encoding is the one PostgreSQL stores (checked against a server in
`warehouse/test_compression.py`)."""

import struct
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from bangkok_pipeline.core.settings import BANGKOK_TZ
from bangkok_pipeline.transform.days import SLOTS, _runs, day_matrix
from bangkok_pipeline.transform.fingerprint import frame_fingerprints
from bangkok_pipeline.warehouse.pgcopy import encode_days


def _readings() -> pl.DataFrame:
    """Two sensors over two Bangkok days with gaps: sensor 3 every minute but one hour, sensor
    9 every 7th minute; values with fractions, negatives and zero; sorted by sensor and time."""
    rng = np.random.default_rng(11)
    start = datetime(2019, 2, 28, 0, 0, tzinfo=BANGKOK_TZ)
    rows = []
    for sensor, step in ((3, 1), (9, 7)):
        for minute in range(0, 2 * SLOTS, step):
            if sensor == 3 and 600 <= minute < 660:
                continue
            rows.append((start + timedelta(minutes=minute), sensor, float(rng.normal(0, 50))))
    frame = pl.DataFrame(
        rows,
        schema={"ts": pl.Datetime("us", BANGKOK_TZ), "sensor_id": pl.Int32, "value": pl.Float32},
        orient="row",
    )
    return frame.with_columns(pl.col("ts").dt.convert_time_zone("UTC"))


def _batches(frame: pl.DataFrame, size: int) -> list[pl.DataFrame]:
    return [frame.slice(at, size) for at in range(0, frame.height, size)]


def test_the_matrix_holds_every_reading_once_whatever_the_batches() -> None:
    frame = _readings()
    whole = day_matrix([frame])
    cut = day_matrix(_batches(frame, 997))  # batches end mid-day and mid-sensor
    assert whole.rows == cut.rows == 4
    assert whole.readings == cut.readings == frame.height
    assert np.array_equal(whole.values, cut.values)
    assert np.array_equal(whole.present, cut.present)
    assert [whole.day(r) for r in range(4)] == [date(2019, 2, 28), date(2019, 3, 1)] * 2
    assert frame_fingerprints(frame).equals(cut.fingerprints())


def test_slots_are_bangkok_minutes_and_summaries_match_the_frame() -> None:
    frame = _readings()
    matrix = day_matrix(_batches(frame, 1000))
    # Sensor 3's first day: slot 0 is 00:00 Bangkok (17:00 UTC the day before), 600-659 empty.
    assert matrix.present[0, 0] and not matrix.present[0, 600:660].any()
    first = frame.row(0, named=True)
    assert first["ts"] == datetime(2019, 2, 27, 17, 0, tzinfo=UTC)
    assert matrix.values[0, 0] == np.float32(first["value"])
    bangkok = frame.with_columns(day=pl.col("ts").dt.convert_time_zone("Asia/Bangkok").dt.date())
    expected = (
        bangkok.group_by("sensor_id", "day")
        .agg(
            n=pl.len(),
            min_value=pl.col("value").min(),
            max_value=pl.col("value").max(),
            sum_value=pl.col("value").cast(pl.Float64).sum(),
        )
        .sort("sensor_id", "day")
    )
    summaries = matrix.summaries().sort("sensor_id", "day")
    assert summaries["n"].to_list() == expected["n"].to_list()
    assert summaries["min_value"].to_list() == expected["min_value"].to_list()
    assert summaries["max_value"].to_list() == expected["max_value"].to_list()
    assert np.allclose(summaries["sum_value"].to_numpy(), expected["sum_value"].to_numpy())
    last = {s: frame.filter(pl.col("sensor_id") == s).row(-1) for s in (3, 9)}
    assert [(s, ts, np.float32(v)) for s, ts, v in matrix.latest()] == [
        (s, last[s][0], np.float32(last[s][2])) for s in (3, 9)
    ]


def test_encoded_rows_are_binary_copy_tuples_with_the_slots_and_hour_arrays() -> None:
    matrix = day_matrix([_readings()])
    encoded = list(encode_days(matrix))
    assert len(encoded) == matrix.rows
    hours = matrix.hours()
    for row, (data, _digest) in enumerate(encoded):
        assert struct.unpack_from(">h", data)[0] == 11  # fields
        at = 2 + (4 + 4) + (4 + 4) + (4 + 2) + (4 + 4) * 2 + (4 + 8)  # the six scalars
        arrays = []
        for _ in range(5):  # vals, hour_n, hour_min, hour_max, hour_sum
            length, ndim, nulls, oid, dim, low = struct.unpack_from(">iiiiii", data, at)
            arrays.append((ndim, nulls, oid, dim, low, length))
            at += 4 + length
        assert at == len(data)
        filled = int((hours.n[row] > 0).sum())
        present = int(matrix.present[row].sum())
        assert arrays[0] == (1, int(present < SLOTS), 700, SLOTS, 1, 20 + 4 * (SLOTS + present))
        assert arrays[1] == (1, 0, 21, 24, 1, 20 + 24 * (4 + 2))
        assert arrays[2] == (1, int(filled < 24), 700, 24, 1, 20 + 4 * 24 + 4 * filled)
        assert arrays[4] == (1, int(filled < 24), 701, 24, 1, 20 + 4 * 24 + 8 * filled)
    # Sensor 3's first day has no reading from 10:00 to 10:59 (slots 600-659): hour 10 is empty.
    assert hours.n[0, 10] == 0 and hours.n[0, 9] == 60 and hours.n.sum() == matrix.readings


def test_runs_of_sorted_keys_equal_numpy_unique() -> None:
    rng = np.random.default_rng(3)
    for keys in (
        np.sort(rng.integers(0, 500, 10_000)),  # sorted: the one-pass path
        rng.integers(0, 50, 1_000),  # unsorted: numpy's
        np.array([], dtype=np.int64),
        np.array([7]),
    ):
        unique, inverse = _runs(keys)
        expected_unique, expected_inverse = np.unique(keys, return_inverse=True)
        assert np.array_equal(unique, expected_unique)
        assert np.array_equal(inverse, expected_inverse)
