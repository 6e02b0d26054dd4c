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
BANGKOK_OFFSET_MINUTES = 7 * 60
_EPOCH = date(1970, 1, 1)
_KEY = 1_000_000  # sensor_id * _KEY + day: one integer per (sensor, day)


@dataclass
class DayMatrix:
    sensor_ids: np.ndarray  # int16, one per row
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
        masked = np.ma.masked_array(self.values, mask=~self.present)
        return pl.DataFrame(
            {
                "sensor_id": self.sensor_ids,
                "day": pl.Series(self.days, dtype=pl.Int32).cast(pl.Date),
                "n": self.present.sum(axis=1).astype(np.int16),
                "min_value": masked.min(axis=1).filled(np.nan).astype(np.float32),
                "max_value": masked.max(axis=1).filled(np.nan).astype(np.float32),
                "sum_value": masked.astype(np.float64).sum(axis=1).filled(0.0),
            }
        )

    def minutes(self) -> np.ndarray:
        """Unix minute of every slot, [rows, SLOTS] int64."""
        midnight = self.days.astype(np.int64) * SLOTS - BANGKOK_OFFSET_MINUTES
        return midnight[:, None] + np.arange(SLOTS, dtype=np.int64)[None, :]

    def fingerprints(self) -> pl.DataFrame:
        """`fingerprint.frame_fingerprints` of the readings the matrix holds (same columns)."""
        bits = self.values.view(np.int32).astype(np.int64)
        per_slot = (self.minutes() % MINUTE_MOD) * MULTIPLIER + bits
        frame = pl.DataFrame(
            {
                "sensor_id": self.sensor_ids,
                "n": self.present.sum(axis=1).astype(np.int64),
                "total": np.where(self.present, self.values.astype(np.float64), 0.0).sum(axis=1),
                "hash": np.where(self.present, per_slot, 0).sum(axis=1),
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
        minutes = self.minutes()
        for row in np.flatnonzero(self.present.any(axis=1)):
            sensor = int(self.sensor_ids[row])
            slot = int(np.flatnonzero(self.present[row])[-1])
            ts = datetime.fromtimestamp(int(minutes[row, slot]) * 60, UTC)
            if sensor not in found or found[sensor][1] < ts:
                found[sensor] = (sensor, ts, float(self.values[row, slot]))
        return [found[s] for s in sorted(found)]


def day_matrix(batches: Iterable[pl.DataFrame]) -> DayMatrix:
    """The day rows of (ts, sensor_id, value) readings, at most one per (sensor, ts), in the
    order of their first reading."""
    rows: dict[tuple[int, int], int] = {}
    values = np.zeros((0, SLOTS), dtype=np.float32)
    present = np.zeros((0, SLOTS), dtype=bool)
    for batch in batches:
        if not batch.height:
            continue
        minute = batch["ts"].dt.epoch("s").to_numpy() // 60 + BANGKOK_OFFSET_MINUTES
        day, slot = np.divmod(minute, SLOTS)
        keys = batch["sensor_id"].to_numpy().astype(np.int64) * _KEY + day
        unique, inverse = np.unique(keys, return_inverse=True)
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
        np.array([k[0] for k in keys_in_order], dtype=np.int16),
        np.array([k[1] for k in keys_in_order], dtype=np.int32),
        values[: len(rows)],
        present[: len(rows)],
    )
