"""The API benchmark's own arithmetic: percentiles, pgbench log parsing, scripts, the report."""

from pathlib import Path

import pytest

from bangkok_pipeline.devtools import api_bench
from bangkok_pipeline.devtools.api_bench import Result


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert api_bench.percentile(values, 0.50) == 50.0
    assert api_bench.percentile(values, 0.95) == 95.0
    assert api_bench.percentile(values, 0.99) == 99.0
    assert api_bench.percentile([7.0], 0.99) == 7.0


def test_latencies_come_from_the_logs_without_each_connections_first(tmp_path: Path) -> None:
    # client_id transaction_no time_us script_no time_epoch time_us
    (tmp_path / "log.1").write_text("0 0 90000 0 1 1\n0 1 1500 0 1 2\n0 2 2500 0 1 3\n")
    (tmp_path / "log.1.1").write_text("1 0 80000 0 1 1\n1 1 500 0 1 2\n")
    latencies = api_bench.read_latencies([tmp_path / "log.1", tmp_path / "log.1.1"])
    assert latencies == [0.5, 1.5, 2.5]


@pytest.mark.parametrize("name", sorted(api_bench.SCRIPTS))
def test_every_script_is_one_claimed_transaction(name: str) -> None:
    script = api_bench._script(name).splitlines()
    body = [line for line in script if not line.startswith("\\set")]
    assert body[0] == "BEGIN;" and body[-1] == "COMMIT;"
    assert "request.jwt.claims" in body[1] and body[2].startswith("SELECT * FROM api.")


def test_report_gives_rls_overhead_and_targets() -> None:
    results = [
        Result("latest_readings", "api", 8, 1000, 100.0, 1.1, 2.2, 3.0),
        Result("latest_readings", "owner", 8, 1000, 110.0, 1.0, 2.0, 2.5),
        Result("daily_zone_energy_month", "api", 8, 100, 10.0, 20.0, 600.0, 700.0),
        Result("daily_zone_energy_month", "owner", 8, 100, 10.0, 10.0, 300.0, 400.0),
    ]
    lines = api_bench.report(results).splitlines()
    latest = next(line for line in lines if line.startswith("latest_readings"))
    assert "+10%" in latest and "p95<50ms ok" in latest and "RLS<=20% ok" in latest
    energy = next(line for line in lines if line.startswith("daily_zone_energy_month"))
    assert "p95<500ms MISS" in energy and "RLS<=20% MISS" in energy
