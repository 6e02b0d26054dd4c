"""`bangkok-pipeline bench ingest`: the full pipeline against plain COPY of the same readings.

Each measured phase runs in its own child process (one process tree), so each gets its own peak
RSS; all of them use the same server, the same source files and a scratch database.

- prepare (not timed against anything): raw + validated layers, giving the long readings;
- floor: binary COPY of those readings into an empty, unindexed, unpartitioned table; and, for
  the index design, text COPY of the same rows, and a unique btree on (sensor_id, ts) built after;
- pipeline: `bangkok-pipeline load` of the same months (the `ingest_month` assets: raw, validate,
  COPY, index, aggregate, reconcile, swap, through Dagster, one fresh process per month; its peak
  RSS is the largest month's). Run as a command, so this module imports no Dagster.
"""

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import psycopg
from psycopg import sql

from bangkok_pipeline.core import settings
from bangkok_pipeline.core.months import Month
from bangkok_pipeline.db import migrations
from bangkok_pipeline.db.connection import with_database
from bangkok_pipeline.transform.layers import layer_dir, parquet_batches
from bangkok_pipeline.warehouse import pgcopy

BENCH_DATABASE = "bangkok_bench"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _iter(month: str) -> Iterator[pl.DataFrame]:
    path = layer_dir("validated", Month.parse(month)) / "readings.parquet"  # published by load
    yield from parquet_batches(path)


def floor(url: str, months: list[str]) -> dict[str, float]:
    """Plain COPY of the validated readings; returns seconds and rows."""
    rows = 0
    binary = text = btree = 0.0
    with psycopg.connect(url, autocommit=True) as conn:
        for month in months:
            for name in ("floor_binary", "floor_text"):
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE {} (ts timestamptz, sensor_id smallint, value real)"
                    ).format(sql.Identifier(name))
                )
            started = time.perf_counter()
            with conn.cursor().copy("COPY floor_binary FROM STDIN (FORMAT BINARY)") as copy:
                for chunk in pgcopy.copy_stream(_iter(month)):
                    copy.write(chunk)
            binary += time.perf_counter() - started
            started = time.perf_counter()
            with conn.cursor().copy("COPY floor_text FROM STDIN") as copy:
                for batch in _iter(month):
                    copy.write(batch.write_csv(separator="\t", include_header=False))
            text += time.perf_counter() - started
            started = time.perf_counter()
            conn.execute("CREATE UNIQUE INDEX ON floor_binary (sensor_id, ts)")
            btree += time.perf_counter() - started
            counted = conn.execute("SELECT count(*) FROM floor_binary").fetchone()
            rows += int(counted[0]) if counted else 0
        conn.execute("DROP TABLE floor_binary, floor_text")
    return {
        "rows": rows,
        "binary_copy_s": binary,
        "text_copy_s": text,
        "btree_after_s": btree,
        "peak_rss_mb": _peak_rss_mb(),
    }


def pipeline(url: str, months: list[str]) -> dict[str, float]:
    """The ingestion assets through Dagster, exactly as `bangkok-pipeline load` runs them (a
    fresh process per month); the peak RSS is the largest of those processes'."""
    command = [sys.executable, "-c", "from bangkok_pipeline.cli.main import main; main()"]
    started = time.perf_counter()
    result = subprocess.run(
        [*command, "load", "--months", ",".join(months), "--source", str(settings.source_dir())],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"pipeline failed:\n{result.stdout}{result.stderr}")
    with psycopg.connect(url) as conn:
        counted = conn.execute("SELECT count(*) FROM sensor_readings").fetchone()
    return {
        "rows": int(counted[0]) if counted else 0,
        "pipeline_s": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def _child(phase: str, url: str, months: list[str], source: Path) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, "-m", "bangkok_pipeline.devtools.bench", phase, url, *months],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": url, "CUBEMS_SOURCE_DIR": str(source)},
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def run_ingest_bench(server_url: str, months: list[str], source: Path) -> dict[str, float]:
    """Scratch database, layers prepared, then floor and pipeline as children."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(BENCH_DATABASE)
            )
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DATABASE)))
    url = with_database(server_url, BENCH_DATABASE)
    with psycopg.connect(url, autocommit=True) as conn:
        migrations.migrate(conn)
    pipeline_figures = _child("pipeline", url, months, source)  # publishes validated layers
    floor_figures = _child("floor", url, months, source)
    return {
        **{f"floor_{k}": v for k, v in floor_figures.items()},
        **{f"pipeline_{k}": v for k, v in pipeline_figures.items()},
    }


def report(figures: dict[str, float]) -> str:
    rows = figures["pipeline_rows"]
    floor_s, pipe_s = figures["floor_binary_copy_s"], figures["pipeline_pipeline_s"]
    lines = [
        f"readings: {rows:,.0f} (floor copied {figures['floor_rows']:,.0f})",
        f"floor, binary COPY into an unindexed table: {floor_s:8.1f} s "
        f"{rows / floor_s:12,.0f} readings/s  peak RSS {figures['floor_peak_rss_mb']:.0f} MB",
        f"      text COPY of the same rows:          {figures['floor_text_copy_s']:8.1f} s "
        f"{rows / figures['floor_text_copy_s']:12,.0f} readings/s",
        f"      unique btree (sensor_id, ts) after:  {figures['floor_btree_after_s']:8.1f} s",
        f"pipeline (parse, validate, COPY, BRIN, aggregates, reconcile, swap): {pipe_s:.1f} s "
        f"{rows / pipe_s:,.0f} readings/s  "
        f"peak RSS of a month {figures['pipeline_peak_rss_mb']:.0f} MB",
        f"ratio pipeline / binary-COPY floor: {pipe_s / floor_s:.2f}x",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    phase, database_url, *month_keys = sys.argv[1:]
    figures = {"floor": floor, "pipeline": pipeline}[phase](database_url, month_keys)
    print(json.dumps(figures))
