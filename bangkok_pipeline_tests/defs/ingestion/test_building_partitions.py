"""The building dimension of the ingestion partitions, end to end with real materializations.

A second building registered with `buildings add` (generated with another seed and the real
files' defects) becomes a partition of the building dimension in the Dagster instance; its month
materializes through the same assets and checks as CU-BEMS's, into its own leaves, and
`bangkok-pipeline load --building` loads it headless through Dagster. What cannot be loaded is
refused in one line: a building nobody registered, another folder than the registered one, the
sample with another building, a name Dagster cannot key.
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from bangkok_pipeline.cli.main import run
from bangkok_pipeline.core.months import Month
from bangkok_pipeline.defs.ingestion.assets import (
    load_month_partitions,
    raw_readings,
    validated_readings,
)
from bangkok_pipeline.defs.ingestion.checks import ingestion_checks
from bangkok_pipeline.defs.ingestion.partitions import BUILDINGS, partition_key
from bangkok_pipeline.defs.resources import LayersResource, PostgresResource, SourceDirectory
from bangkok_pipeline.runtime.instance import dagster_storage, open_instance
from bangkok_pipeline.source.layout import BUILDING
from bangkok_pipeline.warehouse import buildings, compression, partitions
from bangkok_pipeline.warehouse.buildings import BuildingError
from bangkok_pipeline_tests.conftest import building_instance, new_database

pytestmark = pytest.mark.integration

FEB = Month(2019, 2)
TOWER = "Tower B"
ASSETS = [raw_readings, validated_readings, load_month_partitions, *ingestion_checks]
_PER_SENSOR = (
    "SELECT sensor_id, count(*), sum(value::float8) FROM sensor_readings "
    "WHERE sensor_id >= %s AND sensor_id < %s GROUP BY 1 ORDER BY 1"
)


@dataclass
class Site:
    url: str
    cubems: Path  # CU-BEMS's folder (the configured source)
    tower: Path  # Tower B's registered folder

    def figures(self, building: int) -> list[tuple]:
        with psycopg.connect(self.url) as conn:
            return conn.execute(_PER_SENSOR, partitions.building_bounds(building)).fetchall()


@pytest.fixture(scope="module")
def site(server_url: str, tiny_source: Path, tower_source: Path) -> Iterator[Site]:
    with new_database(server_url, migrate=True) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            buildings.register(conn, TOWER, tower_source)
        yield Site(url, tiny_source, tower_source)


def _materialize(
    site: Site, instance: dg.DagsterInstance, building: str, home: Path
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS,
        partition_key=partition_key(building, FEB),
        resources={
            "database": PostgresResource(database_url=site.url),
            "source": SourceDirectory(path=str(site.cubems)),
            "layers": LayersResource(root=str(home / "layers")),
        },
        instance=instance,
        raise_on_error=False,
    )


def test_each_buildings_month_materializes_through_the_assets_and_checks(
    site: Site, tmp_path: Path
) -> None:
    instance = building_instance(BUILDING, TOWER)
    tower = _materialize(site, instance, TOWER, tmp_path)
    assert tower.success, [e.message for e in tower.all_events if e.is_failure]
    checks = tower.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks if c.severity == dg.AssetCheckSeverity.ERROR)
    assert {c.check_name for c in checks} >= {"reconciliation", "aggregates_match_raw"}
    loaded = tower.asset_materializations_for_node("load_month")[0].metadata
    figures = site.figures(2)
    assert len(figures) == 205 and site.figures(1) == [], "Tower B's only, with its new column"
    assert loaded["rows_loaded"].value == sum(n for _, n, _ in figures)
    quarantined = loaded["rows_quarantined"].value
    assert isinstance(quarantined, int) and quarantined > 0, "its defects set aside"

    cubems = _materialize(site, instance, BUILDING, tmp_path)
    assert cubems.success, [e.message for e in cubems.all_events if e.is_failure]
    assert site.figures(2) == figures, "CU-BEMS's load left Tower B's month as it was"
    assert len(site.figures(1)) == 204
    with psycopg.connect(site.url) as conn:  # each in its own leaf, in the policy's tier
        for building in (1, 2):
            assert compression.tiers(conn, building) == {FEB: "compressed"}
            assert partitions.attached(conn, partitions.DAYS, FEB, building)
    run = instance.get_run_by_id(tower.run_id)
    assert run is not None and run.tags["dagster/partition/building"] == TOWER

    unknown = _materialize(site, building_instance("Tower C"), "Tower C", tmp_path)
    assert not unknown.success
    failure = next(e for e in unknown.all_events if e.event_type_value == "STEP_FAILURE")
    error = failure.step_failure_data.error
    assert error is not None and "no building is called 'Tower C'" in error.message, error
    assert "'Tower B'" in error.message, "the registered ones are named"


def test_buildings_add_and_load_building_go_through_the_dagster_instance(
    site: Site,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`buildings add` makes the building a partition of the instance the CLI and the UI use;
    `load --building` runs its months through Dagster there and reports them."""
    monkeypatch.setenv("DATABASE_URL", site.url)
    monkeypatch.setenv("BANGKOK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CUBEMS_SOURCE_DIR", str(site.cubems))
    for name in ("DAGSTER_HOME", "BANGKOK_DAGSTER_PG_URL"):
        monkeypatch.delenv(name, raising=False)
    assert run(["buildings", "add", TOWER, "--source", str(site.tower)]) == 0
    added = capsys.readouterr().out
    assert "load its months: bangkok-pipeline load --building 2" in added
    with open_instance(dagster_storage(site.url)) as instance:
        assert TOWER in instance.get_dynamic_partitions(BUILDINGS)

    assert run(["load", "--building", TOWER, "--months", "2019-02"]) == 0
    out = capsys.readouterr().out
    assert f"loading 1 month(s) of {TOWER} from {site.tower}" in out
    assert "ok   2019-02: " in out and "1 of 1 month(s) loaded" in out
    log = tmp_path / "home" / "logs" / "load-Tower_B-2019-02.log"
    assert log.exists()
    with open_instance(dagster_storage(site.url)) as instance:
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/partition/building": TOWER}))
        assert [r.tags["dagster/partition"] for r in runs] == [f"{TOWER}|2019-02"]
        assert runs[0].status == dg.DagsterRunStatus.SUCCESS
    with psycopg.connect(site.url) as conn:
        logged = conn.execute(
            "SELECT status, rows_loaded FROM load_log WHERE building_id = 2 "
            "ORDER BY load_id DESC LIMIT 1"
        ).fetchone()
    assert logged == ("succeeded", sum(n for _, n, _ in site.figures(2)))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--building", "Tower C"], "no building has the id or name 'Tower C'"),
        (["--building", TOWER, "--source", os.sep], "loads from the folder it was registered"),
        (["--building", TOWER, "--sample"], "--sample is CU-BEMS's sample week"),
    ],
)
def test_a_load_that_cannot_be_made_is_refused_in_one_line(
    site: Site,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    expected: str,
) -> None:
    monkeypatch.setenv("DATABASE_URL", site.url)
    monkeypatch.setenv("BANGKOK_HOME", str(tmp_path / "home"))
    assert run(["load", *args]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err


@pytest.mark.parametrize("name", ["Tower|B", "Tower, B", "Tower [B]", "Tower...B", "Tower\tB"])
def test_a_name_dagster_cannot_key_is_refused(site: Site, name: str) -> None:
    with psycopg.connect(site.url, autocommit=True) as conn, pytest.raises(BuildingError) as error:
        buildings.register(conn, name, site.tower)
    assert "may not hold" in str(error.value)
