"""The coverage map of a month: which minutes each sensor has, and every gap between them.

Computed on the validated frame (which reconciliation proves equal to the database) because the
frame is already sorted by (sensor, time); the database would need a sort of the whole month.
"""

from datetime import timedelta

import polars as pl

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.transform.validation import TIME_ZONE, TS_DTYPE

GAPS_SCHEMA = {
    "sensor_id": pl.Int32,
    "gap_start": TS_DTYPE,
    "gap_end": TS_DTYPE,
    "minutes": pl.Int32,
}


def gap_segments(readings: pl.DataFrame, sensor_ids: list[int], month: Month) -> pl.DataFrame:
    """[gap_start, gap_end) of every run of missing minutes, per sensor, within the month.

    `readings` (ts, sensor_id) must be sorted by sensor then time, one row per sensor-minute;
    sensors in `sensor_ids` without any reading get one gap spanning the month. One pass over
    neighbouring rows: no sort and no window over the month.
    """
    low, high = month.bounds
    minute = timedelta(minutes=1)
    sensor, ts = pl.col("sensor_id"), pl.col("ts")
    first = sensor != sensor.shift(1, fill_value=-1)
    last = sensor != sensor.shift(-1, fill_value=-1)
    frame = readings.select("sensor_id", "ts")
    month_start = pl.lit(low).dt.convert_time_zone(TIME_ZONE)
    month_end = pl.lit(high).dt.convert_time_zone(TIME_ZONE)
    inside = frame.select(
        "sensor_id", (ts.shift(1) + minute).alias("gap_start"), ts.alias("gap_end")
    ).filter(~first & (pl.col("gap_end") > pl.col("gap_start")))
    before = frame.filter(first & (ts > month_start)).select(
        "sensor_id", month_start.alias("gap_start"), ts.alias("gap_end")
    )
    after = frame.filter(last & (ts + minute < month_end)).select(
        "sensor_id", (ts + minute).alias("gap_start"), month_end.alias("gap_end")
    )
    present = set(frame.get_column("sensor_id").unique().to_list())
    absent = pl.DataFrame(
        {"sensor_id": [s for s in sensor_ids if s not in present]}, schema={"sensor_id": pl.Int32}
    ).select("sensor_id", month_start.alias("gap_start"), month_end.alias("gap_end"))
    bounds = {"sensor_id": pl.Int32, "gap_start": TS_DTYPE, "gap_end": TS_DTYPE}
    gaps = pl.concat([g.cast(bounds) for g in (inside, before, after, absent)])  # type: ignore[arg-type]
    return (
        gaps.with_columns(
            (pl.col("gap_end") - pl.col("gap_start")).dt.total_minutes().alias("minutes")
        )
        .sort("sensor_id", "gap_start")
        .cast(GAPS_SCHEMA)  # type: ignore[arg-type]
    )


def coverage_summary(
    readings: pl.DataFrame, gaps: pl.DataFrame, sensor_ids: list[int], month: Month
) -> pl.DataFrame:
    """Per sensor: present and expected minutes, gap segments and the longest gap."""
    expected = month.minutes
    present = readings.group_by("sensor_id").agg(present_minutes=pl.len().cast(pl.Int32))
    gap_stats = gaps.group_by("sensor_id").agg(
        gap_segments=pl.len().cast(pl.Int32),
        longest_gap_minutes=pl.col("minutes").max().cast(pl.Int32),
    )
    return (
        pl.DataFrame({"sensor_id": pl.Series(sensor_ids, dtype=pl.Int32)})
        .join(present, on="sensor_id", how="left")
        .join(gap_stats, on="sensor_id", how="left")
        .select(
            "sensor_id",
            pl.col("present_minutes").fill_null(0),
            pl.lit(expected, pl.Int32).alias("expected_minutes"),
            pl.col("gap_segments").fill_null(0),
            pl.col("longest_gap_minutes").fill_null(0),
        )
        .sort("sensor_id")
    )
