"""Runs of one month never mix, and a reload never shrinks a loaded month unasked.

Real PostgreSQL and real Dagster materializations on two days of seven floors (`tiny_source`);
the layer tests at the end are file-system only.
"""

import shutil
import threading
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.defs.ingestion.assets import (
    load_month_partitions,
    raw_readings,
    validated_readings,
)
from bangkok_pipeline.defs.resources import LayersResource, PostgresResource, SourceDirectory
from bangkok_pipeline.transform.layers import LayerMissing, layer_dir, run_layers
from bangkok_pipeline.warehouse.ingest import extract_raw_month, load_month, validate_month
from bangkok_pipeline.warehouse.load import ShrinkError, ShrinkGuard
from bangkok_pipeline_tests.conftest import (
    building_instance,
    cubems,
    load_directly,
    readings_and_quarantine,
)

pytestmark = pytest.mark.integration

MONTH = "2019-02"
ASSETS = [raw_readings, validated_readings, load_month_partitions]
BAD_CELLS = 6


def _with_bad_cells(source: Path, target: Path) -> Path:
    """A copy of `source` whose 2019Floor2.csv has BAD_CELLS unreadable numbers in February."""
    shutil.copytree(source, target)
    path = target / "2019Floor2.csv"
    lines = path.read_text().splitlines(keepends=True)
    for offset in range(BAD_CELLS):
        fields = lines[10 + offset].split(",")
        fields[3] = "n/a"
        lines[10 + offset] = ",".join(fields)
    path.write_text("".join(lines))
    return target


def _materialize(
    url: str, source: Path, run_config: dict[str, Any] | None = None
) -> dg.ExecuteInProcessResult:
    """The three ingestion assets for MONTH, in an instance of their own."""
    with building_instance() as instance:
        return dg.materialize(
            ASSETS,
            partition_key=cubems(MONTH),
            resources={
                "database": PostgresResource(database_url=url),
                "source": SourceDirectory(path=str(source)),
                "layers": LayersResource(),
            },
            run_config=run_config,
            instance=instance,
            raise_on_error=False,
        )


def test_library_steps_of_two_interleaved_runs_read_only_their_own_layers(
    migrated_url: str, tiny_source: Path, tmp_path: Path
) -> None:
    """The old per-month layer let run A validate and load run B's raw files."""
    bad = _with_bad_cells(tiny_source, tmp_path / "bad")
    first = run_layers(Month.parse(MONTH), "run-a", home=tmp_path)
    second = run_layers(Month.parse(MONTH), "run-b", home=tmp_path)
    with psycopg.connect(migrated_url, autocommit=True) as conn:
        extract_raw_month(conn, tiny_source, first)
        extract_raw_month(conn, bad, second)
        assert validate_month(first).quarantined == 0
        assert validate_month(second).quarantined == BAD_CELLS
        load_month(conn, first)
        clean = readings_and_quarantine(migrated_url)
        load_month(conn, second)
    readings, quarantine = readings_and_quarantine(migrated_url)
    assert len(quarantine) == BAD_CELLS and {r[3] for r in quarantine} == {"invalid_number"}
    assert sum(r[1] for r in readings) == sum(r[1] for r in clean[0]) - BAD_CELLS
    assert not (tmp_path / "layers" / "runs" / MONTH).exists() or not any(
        (tmp_path / "layers" / "runs" / MONTH).iterdir()
    )
    assert (layer_dir("raw", Month.parse(MONTH), tmp_path) / "manifest.json").exists()


def test_two_concurrent_materializations_of_a_month_each_load_their_own_source(
    migrated_url: str,
    tiny_source: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BANGKOK_HOME", str(tmp_path / "home"))
    bad = _with_bad_cells(tiny_source, tmp_path / "bad")
    results: dict[str, dg.ExecuteInProcessResult] = {}

    def materialize(name: str, source: Path) -> None:
        results[name] = _materialize(migrated_url, source)

    threads = [
        threading.Thread(target=materialize, args=("clean", tiny_source)),
        threading.Thread(target=materialize, args=("bad", bad)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results["clean"].success and results["bad"].success
    quarantined = {
        name: result.asset_materializations_for_node("validated_readings")[0]
        .metadata["quarantined"]
        .value
        for name, result in results.items()
    }
    assert quarantined == {"clean": 0, "bad": BAD_CELLS}
    readings, quarantine = readings_and_quarantine(migrated_url)
    with psycopg.connect(migrated_url) as conn:
        (last_run,) = conn.execute(
            "SELECT run_id FROM load_log WHERE status = 'succeeded' ORDER BY finished_at DESC "
            "LIMIT 1"
        ).fetchone()  # type: ignore[misc]
    winner = "bad" if results["bad"].run_id == last_run else "clean"
    assert len(quarantine) == (BAD_CELLS if winner == "bad" else 0)


def test_a_reload_that_drops_a_floor_is_refused_unless_allowed(
    migrated_url: str, tiny_source: Path, tmp_path: Path
) -> None:
    load_directly(migrated_url, tiny_source, MONTH, tmp_path)
    before = readings_and_quarantine(migrated_url)
    fewer = tmp_path / "fewer"
    shutil.copytree(tiny_source, fewer)
    (fewer / "2019Floor1.csv").unlink()
    layers = run_layers(Month.parse(MONTH), "shrinking", home=tmp_path)
    with psycopg.connect(migrated_url, autocommit=True) as conn:
        extract_raw_month(conn, fewer, layers)
        validate_month(layers)
        with pytest.raises(ShrinkError, match=r"floor 1 from [\d,]+ to 0 readings \(-100.0%\)"):
            load_month(conn, layers)
        assert readings_and_quarantine(migrated_url) == before
        assert layers.read_dir("validated").is_dir()  # kept for a re-execution
        load_month(conn, layers, shrink=ShrinkGuard(allow=True))
    readings, _ = readings_and_quarantine(migrated_url)
    assert 0 < sum(r[1] for r in readings) < sum(r[1] for r in before[0])


def test_the_load_asset_refuses_a_shrink_and_its_config_allows_it(
    migrated_url: str,
    tiny_source: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BANGKOK_HOME", str(tmp_path / "home"))
    load_directly(migrated_url, tiny_source, MONTH, tmp_path / "home")
    fewer = tmp_path / "fewer"
    shutil.copytree(tiny_source, fewer)
    for floor in (3, 4):
        (fewer / f"2019Floor{floor}.csv").unlink()

    def materialize(allow: bool) -> dg.ExecuteInProcessResult:
        config = {"ops": {"load_month": {"config": {"allow_shrink": allow}}}}
        return _materialize(migrated_url, fewer, config)

    refused = materialize(allow=False)
    assert not refused.success
    failure = next(e for e in refused.all_events if e.is_step_failure)
    description = failure.step_failure_data.user_failure_data.description  # type: ignore[union-attr]
    assert description is not None
    assert "floor 3 from" in description and "floor 4 from" in description
    assert "--allow-shrink" in description
    assert materialize(allow=True).success


def test_a_run_reads_its_own_layers_then_its_parents_and_never_the_published_ones(
    tmp_path: Path,
) -> None:
    parent = run_layers(Month.parse(MONTH), "parent", home=tmp_path)
    (parent.write_dir("raw")).mkdir(parents=True)
    child = run_layers(Month.parse(MONTH), "child", lineage=("parent",), home=tmp_path)
    assert child.read_dir("raw") == parent.write_dir("raw")
    published = layer_dir("validated", Month.parse(MONTH), tmp_path)
    published.mkdir(parents=True)
    (published / "summary.json").write_text("{}")
    with pytest.raises(LayerMissing, match="materialize validated_readings for 2019-02"):
        child.read_dir("validated")  # a re-execution must not pick up another run's layer
    with pytest.raises(LayerMissing):
        run_layers(Month.parse(MONTH), "full-run", home=tmp_path).read_dir("validated")
    alone = run_layers(Month.parse(MONTH), "alone", home=tmp_path, published_fallback=True)
    snapshot = alone.read_dir("validated")  # an asset materialized on its own
    assert snapshot == alone.write_dir("validated")
    assert (snapshot / "summary.json").stat().st_ino == (published / "summary.json").stat().st_ino


def test_publishing_keeps_live_runs_layers_and_removes_finished_ones(tmp_path: Path) -> None:
    for run_id in ("done", "live", "winner"):
        run_layers(Month.parse(MONTH), run_id, home=tmp_path).write_dir("raw").mkdir(parents=True)
    winner = run_layers(Month.parse(MONTH), "winner", home=tmp_path)
    winner.write_dir("validated").mkdir()
    winner.publish(is_live=lambda run_id: run_id == "live")
    runs = tmp_path / "layers" / "runs" / MONTH
    assert sorted(p.name for p in runs.iterdir()) == ["live"]
    assert layer_dir("raw", Month.parse(MONTH), tmp_path).is_dir()
    assert layer_dir("validated", Month.parse(MONTH), tmp_path).is_dir()
    assert (
        oct(layer_dir("raw", Month.parse(MONTH), tmp_path).parent.stat().st_mode & 0o777) == "0o700"
    )
