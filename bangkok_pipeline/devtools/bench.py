"""`bangkok-pipeline bench ingest`: the full pipeline against plain COPY of the same readings.

Each measured phase runs in its own child process (one process tree), so each gets its own peak
RSS; all of them use the same server, the same source files and a scratch database.

- prepare (not timed against anything): raw + validated layers, giving the long readings;
- floor: binary COPY of those readings into an empty, unindexed, unpartitioned table; and, for
  the index design, text COPY of the same rows, and a unique btree on (sensor_id, ts) built after;
- pipeline: `bangkok-pipeline load` of the same months (the `ingest_month` assets: raw, validate,
  COPY, index, aggregate, reconcile, swap, through Dagster, one fresh process per month; its peak
  RSS is the largest month's). Run as a command, so this module imports no Dagster.
- compressed: the same months straight into the compressed tier (policy: no month kept as rows)
  by the plain step functions, the next months parsed and validated in two worker processes
  while this one and the database take the last; into its own scratch database, whose size is
  then the history's.
"""

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import polars as pl
import psycopg
from psycopg import sql

from bangkok_pipeline.core import settings
from bangkok_pipeline.core.months import Month
from bangkok_pipeline.db import migrations
from bangkok_pipeline.db.connection import with_database
from bangkok_pipeline.db.queries import query
from bangkok_pipeline.transform.layers import layer_dir, parquet_batches, run_layers
from bangkok_pipeline.warehouse import pgcopy
from bangkok_pipeline.warehouse.ingest import extract_raw_month, load_month, validate_month

BENCH_DATABASE = "bangkok_bench"
COMPRESSED_DATABASE = "bangkok_bench_compressed"
# Processes parsing and validating ahead of the loader: two keep both cores busy while the
# loader and the server take their ~3 s a month (one left a core idle part of the time).
PARSERS = 2
# Polars threads per process of the compressed phase: the processes share the cores already,
# and more threads each only add contention and allocator arenas (peak RSS).
POLARS_THREADS = 1


def _peak_rss_mb() -> float:
    """This process's peak RSS since it started its program: Linux's VmHWM (ru_maxrss would
    count the parent's memory that a fork copied before exec)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kilobytes = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))
    return int(kilobytes) / 1024


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
                        "CREATE TABLE {} (ts timestamptz, sensor_id integer, value real)"
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


def _prepare(url: str, source: str, month: str, run_id: str) -> float:
    """Raw and validated layers of one month (in the worker process); its seconds."""
    started = time.perf_counter()
    layers = run_layers(Month.parse(month), run_id)
    with psycopg.connect(url, autocommit=True) as conn:
        extract_raw_month(conn, Path(source), layers)
    validate_month(layers)
    return time.perf_counter() - started


def compressed(url: str, months: list[str]) -> dict[str, float]:
    """Every month straight into the compressed tier: `PARSERS` worker processes prepare (parse
    and validate) the next months while this one loads month N, in order. Peak RSS: this
    process's and the largest a worker reports."""
    source = str(settings.source_dir())
    run_id = f"bench-{time.strftime('%Y%m%dT%H%M%S')}"
    prepare_s = load_s = 0.0
    started = time.perf_counter()
    with (
        ProcessPoolExecutor(max_workers=PARSERS, mp_context=get_context("spawn")) as worker,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        prepared = [worker.submit(_prepare, url, source, m, run_id) for m in months]
        for month, future in zip(months, prepared, strict=True):
            prepare_s += future.result()
            loading = time.perf_counter()
            result = load_month(conn, run_layers(Month.parse(month), run_id), keep_as_rows=0)
            load_s += time.perf_counter() - loading
            if not result.compressed:
                raise RuntimeError(f"{month} was not loaded compressed")
        asked = [worker.submit(_peak_rss_mb) for _ in range(4 * PARSERS)]
        worker_rss = max(f.result() for f in asked)
    seconds = time.perf_counter() - started
    with psycopg.connect(url) as conn:
        row = conn.execute(query("select_bench_sizes")).fetchone()
    assert row is not None
    return {
        "rows": int(row[0]),
        "seconds": seconds,
        "prepare_s": prepare_s,
        "load_s": load_s,
        "database_bytes": int(row[1]),
        "days_bytes": int(row[2]),
        "aggregate_bytes": int(row[3]),
        "peak_rss_mb": _peak_rss_mb(),
        "worker_peak_rss_mb": worker_rss,
    }


def _child(phase: str, url: str, months: list[str], source: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "bangkok_pipeline.devtools.bench", phase, url, *months],
        capture_output=True,
        text=True,
        env={
            **settings.ALLOCATOR_ENVIRONMENT,  # as loads run in the product
            **os.environ,
            "DATABASE_URL": url,
            "CUBEMS_SOURCE_DIR": str(source),
            **({"POLARS_MAX_THREADS": str(POLARS_THREADS)} if phase == "compressed" else {}),
        },
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench phase {phase} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _scratch_database(server_url: str, name: str) -> str:
    """A fresh, migrated database `name` on the server; its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(server_url, name)
    with psycopg.connect(url, autocommit=True) as conn:
        migrations.migrate(conn)
    return url


def run_ingest_bench(
    server_url: str, months: list[str], source: Path, rows_pipeline: bool = True
) -> dict[str, float]:
    """Scratch databases, then the compressed load, the floor and (unless `rows_pipeline` is
    False) the pipeline of rows through Dagster, each as a child."""
    figures: dict[str, float] = {}
    compressed_url = _scratch_database(server_url, COMPRESSED_DATABASE)
    url = _scratch_database(server_url, BENCH_DATABASE)
    for phase, phase_url in (
        ("compressed", compressed_url),  # publishes the validated layers the floor copies
        ("floor", url),
        *((("pipeline", url),) if rows_pipeline else ()),
    ):
        figures |= {f"{phase}_{k}": v for k, v in _child(phase, phase_url, months, source).items()}
    return figures


def report(figures: dict[str, float]) -> str:
    rows = figures["compressed_rows"]
    floor_s = figures["floor_binary_copy_s"]
    lines = [
        f"readings: {rows:,.0f} (floor copied {figures['floor_rows']:,.0f})",
        f"floor, binary COPY into an unindexed table: {floor_s:8.1f} s "
        f"{rows / floor_s:12,.0f} readings/s  peak RSS {figures['floor_peak_rss_mb']:.0f} MB",
        f"      text COPY of the same rows:          {figures['floor_text_copy_s']:8.1f} s "
        f"{rows / figures['floor_text_copy_s']:12,.0f} readings/s",
        f"      unique btree (sensor_id, ts) after:  {figures['floor_btree_after_s']:8.1f} s",
    ]
    comp_s = figures["compressed_seconds"]
    lines += [
        f"compressed load (parse, validate, day rows, COPY, daily aggregates, reconcile, swap; "
        f"{PARSERS} parsers and a loader): {comp_s:.1f} s {rows / comp_s:,.0f} readings/s  "
        f"peak RSS {figures['compressed_peak_rss_mb']:.0f} MB (loader), "
        f"{figures['compressed_worker_peak_rss_mb']:.0f} MB (a parser)",
        f"      of which parse + validate {figures['compressed_prepare_s']:.1f} s (parsers), "
        f"load {figures['compressed_load_s']:.1f} s",
        f"      database {figures['compressed_database_bytes'] / 1e6:.1f} MB (compressed "
        f"readings {figures['compressed_days_bytes'] / 1e6:.1f} MB, aggregates "
        f"{figures['compressed_aggregate_bytes'] / 1e6:.1f} MB)",
        f"ratio compressed load / binary-COPY floor: {comp_s / floor_s:.2f}x",
    ]
    if "pipeline_pipeline_s" in figures:
        pipe_s = figures["pipeline_pipeline_s"]
        lines += [
            f"pipeline of rows (parse, validate, COPY, BRIN, aggregates, reconcile, swap; "
            f"Dagster): {pipe_s:.1f} s {rows / pipe_s:,.0f} readings/s  "
            f"peak RSS of a month {figures['pipeline_peak_rss_mb']:.0f} MB",
            f"ratio pipeline of rows / binary-COPY floor: {pipe_s / floor_s:.2f}x",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    phase, database_url, *month_keys = sys.argv[1:]
    phases = {"floor": floor, "pipeline": pipeline, "compressed": compressed}
    figures = phases[phase](database_url, month_keys)
    print(json.dumps(figures))
