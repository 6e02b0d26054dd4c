"""A second building's month loaded beside CU-BEMS's through the pipeline's own steps (extract,
validate, load), on the embedded server and the Supabase-like 15 as its non-superuser owner.

Tower B is generated with another seed and the real files' defects (a column added mid-year among
them) and registered with `buildings.register`. Its month and CU-BEMS's load at the same time
without waiting for each other (a lock per building-month), each into its own leaves of the
month's partitions, reconciled reading for reading. Reloading one building's month leaves the
other's partitions and side tables exactly as they were; tenants probing as restricted logins see
their building's loaded readings and none of the other's; and one building's month moves between
the rows and compressed tiers, by compression and by a load under the policy, while the other's
stays as it was (also through `db compress --building` and the nightly compression job, which
covers every building); and migration 0012 cannot be undone while the second building has loads.
"""

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from bangkok_pipeline.cli.main import run
from bangkok_pipeline.core.months import Month
from bangkok_pipeline.db import migrations
from bangkok_pipeline.defs.operations.jobs import compression_job
from bangkok_pipeline.defs.resources import PostgresResource
from bangkok_pipeline.ops import health
from bangkok_pipeline.source.layout import BUILDING, BUILDING_ID
from bangkok_pipeline.transform.layers import run_layers
from bangkok_pipeline.warehouse import (
    access,
    buildings,
    compression,
    maintenance,
    partitions,
    quality,
)
from bangkok_pipeline.warehouse.ingest import (
    IngestError,
    extract_raw_month,
    load_month,
    validate_month,
)
from bangkok_pipeline.warehouse.partitions import DAILY, HOURLY, READINGS
from bangkok_pipeline_tests.conftest import new_database

pytestmark = [pytest.mark.integration, pytest.mark.hosted]

FEB = Month(2019, 2)
TOWER = "Tower B"
_PER_SENSOR = (
    "SELECT sensor_id, count(*), sum(value::float8) FROM sensor_readings "
    "WHERE sensor_id >= %s AND sensor_id < %s GROUP BY 1 ORDER BY 1"
)
_SIDE = {  # the building-month's rows of each side table, by its sensors or its building_id
    "quarantine": "SELECT source_file, line_no, column_name, reason, run_id FROM quarantine "
    "WHERE building_id = %(building)s ORDER BY 1, 2, 3",
    "coverage": "SELECT * FROM sensor_coverage WHERE sensor_id >= %(first)s "
    "AND sensor_id < %(beyond)s ORDER BY sensor_id",
    "gaps": "SELECT * FROM reading_gaps WHERE sensor_id >= %(first)s AND sensor_id < %(beyond)s "
    "ORDER BY 1, 2",
    "latest": "SELECT * FROM sensor_latest_readings WHERE sensor_id >= %(first)s "
    "AND sensor_id < %(beyond)s ORDER BY sensor_id",
    "reconciliation": "SELECT sensor_id, matches, run_id FROM reconciliation "
    "WHERE sensor_id >= %(first)s AND sensor_id < %(beyond)s ORDER BY 1",
    "leaves": "SELECT relid::regclass::text, relid::oid::int FROM pg_partition_tree("
    "'partitions.sensor_readings_rows_y2019m02') WHERE isleaf ORDER BY 1",
}


@dataclass
class Site:
    url: str
    home: Path
    sources: dict[int, Path]  # building_id -> its source folder
    names: dict[int, str]  # building_id -> its name
    waited: list[str]  # what a load said it waited for

    def load(self, building: int, keep_as_rows: int | None = None) -> int:
        """Extract, validate and load the building's February with the library (compressed if
        the policy `keep_as_rows` says so); its rows."""
        layers = run_layers(FEB, f"test-b{building}-{uuid.uuid4().hex[:6]}", home=self.home,
                            building=building)  # fmt: skip
        with psycopg.connect(self.url, autocommit=True) as conn:
            extract_raw_month(conn, self.sources[building], layers, self.names[building])
            validate_month(layers)
            loaded = load_month(conn, layers, on_wait=self.waited.append, keep_as_rows=keep_as_rows)
            return loaded.rows_loaded

    def figures(self, building: int) -> list[tuple]:
        with psycopg.connect(self.url) as conn:
            return conn.execute(_PER_SENSOR, partitions.building_bounds(building)).fetchall()

    def side(self, building: int, names: tuple[str, ...] = tuple(_SIDE)) -> dict[str, list[tuple]]:
        first, beyond = partitions.building_bounds(building)
        params = {"building": building, "first": first, "beyond": beyond}
        with psycopg.connect(self.url) as conn:
            return {name: conn.execute(_SIDE[name], params).fetchall() for name in names}


@pytest.fixture(scope="module")
def site(
    server_url: str,
    tiny_source: Path,
    tower_source: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Site]:
    tower = tower_source
    with new_database(server_url, migrate=True) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            tower_id = buildings.register(conn, TOWER, tower).building.building_id
        sources = {BUILDING_ID: tiny_source, tower_id: tower}
        site = Site(url, tmp_path_factory.mktemp("home"), sources, {1: BUILDING, tower_id: TOWER},
                    [])  # fmt: skip
        rows: dict[int, int] = {}
        loads = [
            threading.Thread(target=lambda b=b: rows.__setitem__(b, site.load(b))) for b in sources
        ]
        for load in loads:
            load.start()
        for load in loads:
            load.join()
        assert sorted(rows) == sorted(sources), "both loads finished"
        yield site


def test_two_buildings_load_one_month_at_once_each_into_its_own_leaves(site: Site) -> None:
    tower = max(site.sources)
    assert tower == 2 and site.waited == [], "a lock per building-month: neither waited"
    cubems, second = site.figures(BUILDING_ID), site.figures(tower)
    assert len(cubems) == 204 and len(second) == 205, "Tower B's files add a column"
    assert [row[0] for row in second[:204]] == [row[0] + partitions.BLOCK for row in cubems]
    assert [row[1:] for row in cubems] != [row[1:] for row in second], "another seed's data"
    with psycopg.connect(site.url) as conn:
        for table in (READINGS, HOURLY, DAILY):
            leaves = conn.execute(
                "SELECT relid::regclass::text FROM pg_partition_tree(%s) WHERE isleaf ORDER BY 1",
                (f"partitions.{table.name(FEB)}",),
            ).fetchall()
            assert leaves == [(f"partitions.{table.leaf_name(FEB, b)}",) for b in (1, 2)]
        logged = conn.execute(
            "SELECT building_id, status, rows_loaded FROM load_log ORDER BY building_id"
        ).fetchall()
        assert [(b, s) for b, s, _ in logged] == [(1, "succeeded"), (2, "succeeded")]
        assert conn.execute(
            "SELECT bool_and(matches), count(DISTINCT sensor_id / 32768) FROM reconciliation"
        ).fetchone() == (True, 2)
        locks = conn.execute("SELECT building_id, month FROM month_locks ORDER BY 1").fetchall()
        assert locks == [(1, FEB.first_day), (2, FEB.first_day)]
    for building in site.sources:
        assert sum(n for _, n, _ in site.figures(building)) == next(
            r for b, _, r in logged if b == building
        )
    assert site.side(BUILDING_ID)["quarantine"] == [], "the tiny CU-BEMS source has no defects"
    quarantined = site.side(tower)["quarantine"]
    assert quarantined and {row[4][:8] for row in quarantined} == {"test-b2-"}


def test_reloading_one_building_leaves_the_others_month_exactly_as_it_was(site: Site) -> None:
    tower = max(site.sources)
    before = {b: (site.figures(b), site.side(b)) for b in site.sources}
    site.load(BUILDING_ID)
    after_cubems = site.side(BUILDING_ID)
    assert site.figures(BUILDING_ID) == before[BUILDING_ID][0]
    assert after_cubems["reconciliation"] != before[BUILDING_ID][1]["reconciliation"], "new run"
    assert (site.figures(tower), site.side(tower)["quarantine"]) == (
        before[tower][0],
        before[tower][1]["quarantine"],
    )
    for name in ("coverage", "gaps", "latest", "reconciliation"):
        assert site.side(tower)[name] == before[tower][1][name], name
    leaves = dict(after_cubems["leaves"])
    old = dict(before[tower][1]["leaves"])
    tower_leaf = f"partitions.{READINGS.leaf_name(FEB, tower)}"
    cubems_leaf = f"partitions.{READINGS.leaf_name(FEB, BUILDING_ID)}"
    assert leaves[tower_leaf] == old[tower_leaf], "building 2's leaf untouched"
    assert leaves[cubems_leaf] != old[cubems_leaf], "building 1's leaf replaced"


def test_a_tenant_sees_its_buildings_loaded_month_and_none_of_the_other(site: Site) -> None:
    tower = max(site.sources)
    expected = {b: site.figures(b) for b in site.sources}
    tag = uuid.uuid4().hex[:6]
    logins = []
    try:
        with psycopg.connect(site.url, autocommit=True) as conn:
            for building in site.sources:
                tenant = access.create_tenant(conn, f"b{building} {tag}")
                access.subscribe(conn, tenant, building, "professional")
                user, login = access.add_user_with_login(
                    conn, tenant, "viewer", f"b{building}.{tag}@example.org", f"t_b{building}_{tag}"
                )
                logins.append((building, user, login))
        for building, user, login in logins:
            with psycopg.connect(login.url(site.url)) as conn, access.acting_as(conn, user):
                seen = conn.execute(_PER_SENSOR, (0, 2**31 - 1)).fetchall()
                assert seen == expected[building]
                other = tower if building == BUILDING_ID else BUILDING_ID
                first, beyond = partitions.building_bounds(other)
                assert conn.execute(
                    "SELECT count(*) FROM daily_sensor_stats WHERE sensor_id >= %s "
                    "AND sensor_id < %s",
                    (first, beyond),
                ).fetchone() == (0,)
    finally:
        with psycopg.connect(site.url, autocommit=True) as conn:
            for _, _, login in logins:
                access.drop_login(conn, login.name)


def test_health_counts_building_months_and_names_a_lost_one_with_its_building(
    site: Site,
) -> None:
    """`health` sees both buildings' Februaries, and a building-month whose load succeeded but
    whose partition is gone is critical with its building named, whatever the other building
    holds that month."""
    with psycopg.connect(site.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO load_log (building_id, month, run_id, status, finished_at) "
            "VALUES (2, '2019-03-01', 'vanished', 'succeeded', now()), "
            "(1, '2019-03-01', 'there', 'succeeded', now())"
        )
        try:
            with conn.transaction():
                partitions.ensure_month(conn, READINGS, Month(2019, 3))
                staging = partitions.create_staging(conn, READINGS, Month(2019, 3), "h")
                conn.execute(
                    sql.SQL("INSERT INTO {} VALUES (%s, 1, 1)").format(staging),
                    (READINGS.bounds(Month(2019, 3))[0],),
                )
                partitions.attach(conn, READINGS, Month(2019, 3), "h")
            limits = health.Limits(budget_bytes=10 * 1024**3, slow_ms=500)
            found = {f.concern: f for f in health.check_health(site.url, None, limits).findings}
        finally:
            conn.execute("DELETE FROM load_log WHERE run_id IN ('vanished', 'there')")
            with conn.transaction():
                partitions.detach_and_drop(conn, READINGS, Month(2019, 3))
    attached = found["partitions"]
    assert attached.status is health.Status.CRITICAL, attached.message
    assert "2 month(s) attached" in attached.message
    assert "(3 building-months of 2 buildings attached)" in attached.message
    assert "loaded but partition gone (not archived): 2019-03 of building 2" in attached.message
    assert attached.details["loaded_but_missing"] == ["2019-03 of building 2"]


def test_0012_is_not_undone_while_the_second_building_has_loads(site: Site) -> None:
    with psycopg.connect(site.url, autocommit=True) as conn:
        with pytest.raises(migrations.MigrationError, match="buildings after the first"):
            migrations.downgrade(conn, 11)
        assert migrations.current_version(conn) == 12, "0013 went down whole, 0012 refused"
        assert migrations.migrate(conn) == ["0013_building_archives"]


def test_a_run_given_another_buildings_id_is_refused_in_one_line(
    site: Site, tiny_source: Path
) -> None:
    layers = run_layers(FEB, "test-mixed", home=site.home, building=max(site.sources))
    with (
        psycopg.connect(site.url, autocommit=True) as conn,
        pytest.raises(IngestError, match="not those of building 2"),
    ):
        extract_raw_month(conn, tiny_source, layers, BUILDING)


def test_one_buildings_month_changes_tier_and_the_others_stays_as_it_was(site: Site) -> None:
    tower = max(site.sources)
    before = {b: site.figures(b) for b in site.sources}
    cubems_leaf = site.side(BUILDING_ID)["leaves"][0]
    with psycopg.connect(site.url, autocommit=True) as conn:
        assert compression.tiers(conn, tower) == {FEB: "rows"}
        [change] = compression.compress(conn, [FEB], building=tower)
        assert change.tier == "compressed" and change.bytes_after < change.bytes_before
        assert compression.tiers(conn, tower) == {FEB: "compressed"}
        assert compression.tiers(conn, BUILDING_ID) == {FEB: "rows"}
        assert compression.compress(conn, [FEB], building=tower) == []
    assert {b: site.figures(b) for b in site.sources} == before
    assert site.side(BUILDING_ID)["leaves"][0] == cubems_leaf, "building 1's rows untouched"
    with psycopg.connect(site.url, autocommit=True) as conn:
        [change] = compression.decompress(conn, [FEB], building=tower)
        assert compression.tiers(conn, tower) == {FEB: "rows"}
    assert {b: site.figures(b) for b in site.sources} == before

    site.load(tower, keep_as_rows=0)  # the default policy: every month compressed
    with psycopg.connect(site.url, autocommit=True) as conn:
        assert compression.tiers(conn, tower) == {FEB: "compressed"}
        assert compression.tiers(conn, BUILDING_ID) == {FEB: "rows"}
        assert conn.execute(
            "SELECT bool_and(matches) FROM reconciliation WHERE sensor_id > %s",
            (partitions.BLOCK,),
        ).fetchone() == (True,)
    assert {b: site.figures(b) for b in site.sources} == before


def test_the_commands_and_the_nightly_job_compress_each_building(
    site: Site, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`db decompress --building`, a building that does not exist (one line), then the
    compression job, which applies the policy to every building's months."""
    tower = max(site.sources)
    before = {b: site.figures(b) for b in site.sources}
    monkeypatch.setenv("DATABASE_URL", site.url)
    assert run(["db", "decompress", "--building", TOWER, "--months", "2019-02"]) == 0
    assert capsys.readouterr().out.startswith("2019-02: rows, ")
    assert run(["db", "compress", "--building", "9", "--months", "2019-02"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no building has the id or name '9'" in err
    with psycopg.connect(site.url) as conn:
        assert compression.tiers(conn, tower) == compression.tiers(conn) == {FEB: "rows"}

    monkeypatch.setenv("BANGKOK_COMPRESS_AFTER_MONTHS", "0")
    result = compression_job.execute_in_process(
        resources={"database": PostgresResource(database_url=site.url)},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    observed = [
        (o.metadata["building"].value, o.metadata["compressed_month"].value)
        for o in result.asset_observations_for_node("apply_compression")
    ]
    assert observed == [(BUILDING, "2019-02"), (TOWER, "2019-02")]
    with psycopg.connect(site.url) as conn:
        assert compression.tiers(conn, tower) == compression.tiers(conn) == {FEB: "compressed"}
    assert {b: site.figures(b) for b in site.sources} == before


def test_one_buildings_month_is_archived_and_restored_while_the_others_stays(
    site: Site,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`archive month --building` takes Tower B's February out to its own file (CU-BEMS's stays
    attached, untouched), `archive list` names the building, the same month of CU-BEMS is
    archived beside it without overwriting it, and `archive restore --building` puts each back
    exactly, aggregates included."""
    tower = max(site.sources)
    before = {b: (site.figures(b), site.side(b, ("coverage",))) for b in site.sources}
    with psycopg.connect(site.url) as conn:
        daily = conn.execute(
            "SELECT * FROM daily_sensor_stats WHERE sensor_id > %s ORDER BY 1, 2",
            (partitions.BLOCK,),
        ).fetchall()
    monkeypatch.setenv("DATABASE_URL", site.url)
    where = ["--dir", str(tmp_path)]
    month = ["--month", "2019-02"]
    assert run(["archive", "month", *month, "--building", TOWER, "--drop-aggregates", *where]) == 0
    assert "archived 2019-02: " in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "sensor_readings_2019-02-b2.manifest.json",
        "sensor_readings_2019-02-b2.parquet",
    ]
    assert site.figures(tower) == [] and site.figures(BUILDING_ID) == before[BUILDING_ID][0]
    with psycopg.connect(site.url) as conn:
        assert maintenance.archived_months(conn, tower) == {FEB: True}
        assert maintenance.archived_months(conn) == {}, "CU-BEMS's February is not archived"
        assert not quality.partition_exists(conn, FEB, tower)  # its compressed days, and
        assert not partitions.attached(conn, DAILY, FEB, tower)  # its aggregates, are gone
        assert quality.partition_exists(conn, FEB, BUILDING_ID)
        assert partitions.attached(conn, DAILY, FEB, BUILDING_ID)
    assert run(["archive", "month", *month, *where]) == 0  # CU-BEMS's, beside it
    assert run(["archive", "list", *where]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if "readings" in line]
    assert [line.split()[1:3] for line in listed[-2:]] == [["Chamchuri", "5"], ["Tower", "B"]]

    assert run(["archive", "restore", *month, "--building", TOWER, *where]) == 0
    assert "hourly and daily aggregates rebuilt" in capsys.readouterr().out
    assert run(["archive", "restore", *month, *where]) == 0
    assert run(["archive", "restore", *month, "--building", TOWER, *where]) == 1
    assert "already in the database" in capsys.readouterr().err
    assert {b: (site.figures(b), site.side(b, ("coverage",))) for b in site.sources} == before
    with psycopg.connect(site.url) as conn:
        assert (
            conn.execute(
                "SELECT * FROM daily_sensor_stats WHERE sensor_id > %s ORDER BY 1, 2",
                (partitions.BLOCK,),
            ).fetchall()
            == daily
        )
        assert maintenance.archived_months(conn, None) == {}
