"""Gap segments (`transform.coverage`) against a minute-by-minute reference."""

import random
from datetime import timedelta

import polars as pl

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.transform.coverage import gap_segments
from bangkok_pipeline.transform.validation import TS_DTYPE

MONTH = Month(2019, 2)


def _reference(present: dict[int, list[int]], sensor_ids: list[int]) -> list[tuple[int, int, int]]:
    """(sensor, first missing minute, minutes) of every run of missing minutes, by walking."""
    gaps = []
    for sensor in sensor_ids:
        have = set(present.get(sensor, []))
        start = None
        for minute in range(MONTH.minutes + 1):
            missing = minute < MONTH.minutes and minute not in have
            if missing and start is None:
                start = minute
            elif not missing and start is not None:
                gaps.append((sensor, start, minute - start))
                start = None
    return gaps


def test_gaps_equal_a_minute_by_minute_walk() -> None:
    rng = random.Random(7)
    sensor_ids = [3, 5, 8, 9, 12]
    present = {
        3: [m for m in range(MONTH.minutes) if rng.random() > 0.01],  # scattered holes
        5: list(range(MONTH.minutes)),  # complete
        8: list(range(10, MONTH.minutes - 7)),  # gaps at both ends only
        12: [0, MONTH.minutes - 1],  # one long gap between the first and last minute
    }  # 9: no reading at all
    low = MONTH.bounds[0]
    frame = pl.DataFrame(
        {
            "ts": [low + timedelta(minutes=m) for s in sorted(present) for m in present[s]],
            "sensor_id": [s for s in sorted(present) for _ in present[s]],
        },
        schema={"ts": TS_DTYPE, "sensor_id": pl.Int32},
    )
    gaps = gap_segments(frame, sensor_ids, MONTH)
    found = [
        (s, int((start - low).total_seconds()) // 60, minutes)
        for s, start, end, minutes in gaps.iter_rows()
    ]
    assert found == _reference(present, sensor_ids)
    assert all(
        end - start == timedelta(minutes=minutes) for _, start, end, minutes in gaps.iter_rows()
    )
