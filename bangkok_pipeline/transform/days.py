"""A month's readings as one row per sensor and Bangkok day: the compressed tier, built in numpy.

Row r of a `DayMatrix` is sensor `sensor_ids[r]` on Bangkok day `days[r]`; its 1,440 minute slots
hold the readings (`present` marks which), slot i being the minute starting i minutes after the
day's Bangkok midnight (UTC+7, no daylight saving), as `sensor_readings_days.vals` stores them.
Building it takes the validated readings batch by batch; the matrix, not the long frame, is what
gets encoded for COPY (`pgcopy.encode_days`), so the figures computed from it (`fingerprints`)
are those of exactly the bytes the database receives.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from bangkok_pipeline.transform.fingerprint import MINUTE_MOD, MULTIPLIER

SLOTS = 1440
HOURS = 24
BANGKOK_OFFSET_MINUTES = 7 * 60
_EPOCH = date(1970, 1, 1)
BLOCK_ROWS = 512  # rows per block of the per-slot computations (~3 MB per array)
_KEY = 1_000_000  # sensor_id * _KEY + day: one integer per (sensor, day)


@dataclass(frozen=True)
class Hours:
    """Per row and hour of the day: readings, min, max and sum (min/max/sum mean nothing where
    n is 0)."""

    n: np.ndarray  # int16 [rows, HOURS]
    low: np.ndarray  # float32
    high: np.ndarray  # float32
    total: np.ndarray  # float64


@dataclass
class DayMatrix:
    sensor_ids: np.ndarray  # int32, one per row
    days: np.ndarray  # int32, days since 1970-01-01 (Bangkok calendar days)
    values: np.ndarray  # float32 [rows, SLOTS]; 0 where not present
    present: np.ndarray  # bool [rows, SLOTS]

    @property
    def rows(self) -> int:
        return int(self.sensor_ids.size)

    @property
    def readings(self) -> int:
        return int(self.present.sum())

    def day(self, row: int) -> date:
        return _EPOCH + timedelta(days=int(self.days[row]))

    def summaries(self) -> pl.DataFrame:
        """sensor_id, day, n, min_value, max_value, sum_value of every row."""
        low, high, total = [], [], []
        for rows in self.blocks():
            _, block_low, block_high, block_total = _stats(self.present[rows], self.values[rows])
            low.append(block_low)
            high.append(block_high)
            total.append(block_total)
        return pl.DataFrame(
            {
                "sensor_id": self.sensor_ids,
                "day": pl.Series(self.days, dtype=pl.Int32).cast(pl.Date),
                "n": self.present.sum(axis=1).astype(np.int16),
                "min_value": np.concatenate(low) if low else np.zeros(0, np.float32),
                "max_value": np.concatenate(high) if high else np.zeros(0, np.float32),
                "sum_value": np.concatenate(total) if total else np.zeros(0),
            }
        )

    def hours(self, rows: slice = slice(None)) -> Hours:
        """The hourly summaries of `rows` (slot i is in hour i // 60)."""
        shape = (-1, HOURS, SLOTS // HOURS)
        return Hours(*_stats(self.present[rows].reshape(shape), self.values[rows].reshape(shape)))

    def minutes(self, rows: slice = slice(None)) -> np.ndarray:
        """Unix minute of every slot of `rows`, [rows, SLOTS] int64."""
        midnight = self.days[rows].astype(np.int64) * SLOTS - BANGKOK_OFFSET_MINUTES
        return midnight[:, None] + np.arange(SLOTS, dtype=np.int64)[None, :]

    def blocks(self, size: int = BLOCK_ROWS) -> list[slice]:
        """Slices of at most `size` rows: work on a block at a time keeps memory flat."""
        return [slice(at, min(at + size, self.rows)) for at in range(0, self.rows, size)]

    def fingerprints(self) -> pl.DataFrame:
        """`fingerprint.frame_fingerprints` of the readings the matrix holds (same columns)."""
        n, total, hashes = [], [], []
        for rows in self.blocks():
            present = self.present[rows]
            values = np.where(present, self.values[rows], np.float32(0))
            bits = values.view(np.int32).astype(np.int64)
            per_slot = (self.minutes(rows) % MINUTE_MOD) * MULTIPLIER + bits
            n.append(present.sum(axis=1).astype(np.int64))
            total.append(values.astype(np.float64).sum(axis=1))
            hashes.append(np.where(present, per_slot, 0).sum(axis=1))
        frame = pl.DataFrame(
            {
                "sensor_id": self.sensor_ids,
                "n": np.concatenate(n) if n else np.zeros(0, np.int64),
                "total": np.concatenate(total) if total else np.zeros(0),
                "hash": np.concatenate(hashes) if hashes else np.zeros(0, np.int64),
            }
        )
        return (
            frame.group_by("sensor_id")
            .agg(pl.col("n").sum(), pl.col("total").sum(), pl.col("hash").sum())
            .sort("sensor_id")
        )

    def latest(self) -> list[tuple[int, datetime, float]]:
        """Each sensor's last reading: (sensor_id, ts, value), by sensor."""
        found: dict[int, tuple[int, datetime, float]] = {}
        for row in np.flatnonzero(self.present.any(axis=1)):
            sensor = int(self.sensor_ids[row])
            slot = int(np.flatnonzero(self.present[row])[-1])
            minute = int(self.days[row]) * SLOTS - BANGKOK_OFFSET_MINUTES + slot
            ts = datetime.fromtimestamp(minute * 60, UTC)
            if sensor not in found or found[sensor][1] < ts:
                found[sensor] = (sensor, ts, float(self.values[row, slot]))
        return [found[s] for s in sorted(found)]


def _stats(
    present: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Count (int16), min, max (float32) and sum (float64) of the present values along the
    last axis; min, max and sum mean nothing where the count is 0."""
    return (
        present.sum(axis=-1).astype(np.int16),
        np.where(present, values, np.inf).min(axis=-1).astype(np.float32),
        np.where(present, values, -np.inf).max(axis=-1).astype(np.float32),
        np.where(present, values, 0).astype(np.float64).sum(axis=-1),
    )


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(keys, return_inverse=True)`, in one pass when `keys` are sorted already (a
    validated layer is sorted by sensor and time)."""
    if keys.size and np.all(keys[1:] >= keys[:-1]):
        starts = np.flatnonzero(np.diff(keys, prepend=keys[0] - 1))
        inverse = np.repeat(np.arange(starts.size), np.diff(starts, append=keys.size))
        return keys[starts], inverse
    return np.unique(keys, return_inverse=True)


def day_matrix(batches: Iterable[pl.DataFrame], capacity: int = 0) -> DayMatrix:
    """The day rows of (ts, sensor_id, value) readings, at most one per (sensor, ts), in the
    order of their first reading. `capacity`: the rows expected (sensors x days), allocated at
    once so that the matrix need not grow (growing briefly holds it twice)."""
    rows: dict[tuple[int, int], int] = {}
    values = np.zeros((capacity, SLOTS), dtype=np.float32)
    present = np.zeros((capacity, SLOTS), dtype=bool)
    for batch in batches:
        if not batch.height:
            continue
        minute = batch["ts"].dt.epoch("s").to_numpy() // 60 + BANGKOK_OFFSET_MINUTES
        day, slot = np.divmod(minute, SLOTS)
        keys = batch["sensor_id"].to_numpy().astype(np.int64) * _KEY + day
        unique, inverse = _runs(keys)
        index = np.array(
            [rows.setdefault((int(k // _KEY), int(k % _KEY)), len(rows)) for k in unique]
        )
        if len(rows) > values.shape[0]:  # grow by doubling: the matrix is the month's only copy
            more = max(len(rows), 2 * values.shape[0]) - values.shape[0]
            values = np.concatenate([values, np.zeros((more, SLOTS), np.float32)])
            present = np.concatenate([present, np.zeros((more, SLOTS), bool)])
        values[index[inverse], slot] = batch["value"].to_numpy().astype(np.float32)
        present[index[inverse], slot] = True
    keys_in_order = list(rows)
    return DayMatrix(
        np.array([k[0] for k in keys_in_order], dtype=np.int32),
        np.array([k[1] for k in keys_in_order], dtype=np.int32),
        values[: len(rows)],
        present[: len(rows)],
    )
