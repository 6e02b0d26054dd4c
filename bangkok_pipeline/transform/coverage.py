"""The coverage map of a month: which minutes each sensor has, and every gap between them.

Computed on the validated frame (which reconciliation proves equal to the database) because the
frame is already sorted by (sensor, time); the database would need a sort of the whole month.
"""

from datetime import timedelta

import polars as pl

from bangkok_pipeline.core.months import Month

GAPS_SCHEMA = {
    "sensor_id": pl.Int16,
    "gap_start": pl.Datetime("us", "Asia/Bangkok"),
    "gap_end": pl.Datetime("us", "Asia/Bangkok"),
    "minutes": pl.Int32,
}


def gap_segments(readings: pl.DataFrame, sensor_ids: list[int], month: Month) -> pl.DataFrame:
    """[gap_start, gap_end) of every run of missing minutes, per sensor, within the month.

    `readings` (ts, sensor_id) must be sorted by sensor then time; sensors in `sensor_ids`
    without any reading get one gap spanning the month.
    """
    low, high = month.bounds
    minute = timedelta(minutes=1)
    frame = readings.select("sensor_id", "ts")
    edges = pl.DataFrame(
        {
            "sensor_id": pl.Series(sensor_ids * 2, dtype=pl.Int16),
            "ts": pl.Series([low - minute] * len(sensor_ids) + [high] * len(sensor_ids)),
        }
    ).with_columns(pl.col("ts").dt.convert_time_zone("Asia/Bangkok"))
    ordered = pl.concat([frame, edges.cast(frame.schema)]).sort("sensor_id", "ts")
    previous = pl.col("ts").shift(1).over("sensor_id")
    gaps = ordered.with_columns(gap_start=previous + minute, gap_end=pl.col("ts")).filter(
        pl.col("gap_start").is_not_null() & (pl.col("gap_end") > pl.col("gap_start"))
    )
    return gaps.select(
        "sensor_id",
        "gap_start",
        "gap_end",
        ((pl.col("gap_end") - pl.col("gap_start")).dt.total_minutes())
        .cast(pl.Int32)
        .alias("minutes"),
    ).cast(GAPS_SCHEMA)  # type: ignore[arg-type]


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
        pl.DataFrame({"sensor_id": pl.Series(sensor_ids, dtype=pl.Int16)})
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
