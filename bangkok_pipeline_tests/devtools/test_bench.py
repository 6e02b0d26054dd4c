"""`bench ingest` on a small month: the compressed load and the binary-COPY floor hold the same
readings, the compressed one in its own scratch database, and the report compares them."""

from pathlib import Path

import psycopg
import pytest

from bangkok_pipeline.db.connection import with_database
from bangkok_pipeline.devtools import bench

pytestmark = pytest.mark.integration


def test_the_compressed_load_is_measured_against_the_floor(
    server_url: str, tiny_source: Path, bangkok_home: Path
) -> None:
    figures = bench.run_ingest_bench(server_url, ["2019-02"], tiny_source, rows_pipeline=False)
    assert figures["compressed_rows"] == figures["floor_rows"] > 500_000
    assert 0 < figures["compressed_days_bytes"] < figures["compressed_database_bytes"]
    assert (
        figures["compressed_peak_rss_mb"] < 512 and figures["compressed_worker_peak_rss_mb"] < 512
    )
    url = with_database(server_url, bench.COMPRESSED_DATABASE)
    with psycopg.connect(url) as conn:
        tiers = conn.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'sensor_readings_rows'::regclass"
        ).fetchone()
    assert tiers == (0,)  # nothing as rows
    text = bench.report(figures)
    assert "ratio compressed load / binary-COPY floor" in text
    assert "pipeline of rows" not in text
