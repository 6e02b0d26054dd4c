"""`bench partitions` at a tiny size, end to end: a real dagster-webserver answers real GraphQL
over HTTP, and the counts it reports are exact for both variants; a code location that does not
load is one clear error, and the temporary DAGSTER_HOME is gone afterwards."""

import tempfile
from pathlib import Path

import pytest

from bangkok_pipeline.runtime import partition_bench
from bangkok_pipeline.runtime.partition_bench import PartitionBenchError, run_partition_bench

pytestmark = pytest.mark.integration

BUILDINGS, MONTHS, REPEATS = 3, 2, 2


def _bench_homes() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("bangkok-partition-bench-*"))


def test_both_variants_report_exact_counts_and_positive_timings() -> None:
    before = _bench_homes()
    lines: list[str] = []
    results = run_partition_bench(BUILDINGS, MONTHS, REPEATS, progress=lines.append)

    assert [r.variant for r in results] == ["static", "dynamic"]
    for result in results:
        assert result.partitions_per_asset == BUILDINGS * MONTHS
        # the checkerboard (building index + month index even) of 3 × 2: 3 partitions
        assert result.materialized_per_asset == 3
        assert result.backfill_asset_partitions == len(partition_bench.ASSETS) * BUILDINGS * MONTHS
        assert result.status.samples == result.keys.samples == len(partition_bench.ASSETS) * REPEATS
        assert result.backfill.samples == REPEATS
        for timing in (result.status, result.keys, result.backfill):
            assert 0 < timing.median_ms <= timing.max_ms
    table = partition_bench.report(results).splitlines()
    assert len(table) == 3 and table[1].startswith("static") and table[2].startswith("dynamic")
    assert any("dagster-webserver on http://127.0.0.1:" in line for line in lines)
    assert _bench_homes() == before


def test_the_months_and_the_checkerboard_of_materializations() -> None:
    layout = partition_bench.shape(3, 8)
    assert layout.months[0] == "2018-07" and layout.months[-1] == "2019-02"
    assert layout.end == "2019-03"
    assert layout.buildings == ["building-001", "building-002", "building-003"]
    assert len(layout.materialized) == 12
    assert ("building-001", "2018-07") in layout.materialized
    assert ("building-002", "2018-07") not in layout.materialized


def test_a_code_location_that_does_not_load_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = _bench_homes()
    broken = "raise RuntimeError('broken on purpose')  # {buildings} {start} {end} {dynamic}\n"
    monkeypatch.setattr(partition_bench, "DEFINITIONS_TEMPLATE", broken)
    with pytest.raises(PartitionBenchError, match="did not load: .*DagsterUserCodeLoadError"):
        run_partition_bench(1, 1, 1)
    assert _bench_homes() == before
