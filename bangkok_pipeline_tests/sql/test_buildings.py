"""Three buildings in one database, on the embedded server and the Supabase-like 15 (as its
non-superuser project login).

`bangkok-pipeline buildings add` registers CU-BEMS, a second building and a small third one from
their folders' headers; the others' sensors take ids of their own blocks, past smallint. Each
building then gets a day of readings and a latest reading per sensor (inserted directly, in a
plain month partition; `warehouse/test_building_months.py` loads real months of two buildings),
and tenants probe as restricted logins (members of
bangkok_api; on Supabase also through `authenticator` switched to `authenticated` with the user's
JWT): each sees exactly what its subscriptions give (a building's sensors, its free sample, or two
buildings with the one between them left out) and nothing of any other building.
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from bangkok_pipeline.cli.main import run
from bangkok_pipeline.db.connection import with_database
from bangkok_pipeline.source.layout import BUILDING, FLOORS, file_name, floor_columns
from bangkok_pipeline.warehouse import access, buildings
from bangkok_pipeline_tests.conftest import new_database

pytestmark = [pytest.mark.integration, pytest.mark.hosted]

TAG = "bld"  # the same in every xdist worker; logins are cluster-wide, dropped afterwards
TOWER = "Tower B"
ANNEX = "Annex C"  # building 3: one floor, numbered 12
BUILDINGS = (BUILDING, TOWER, ANNEX)
BLOCK = 32768
PERSPECTIVES: dict[str, list[tuple[str, str]]] = {  # user: its tenant's subscriptions
    "cubems_pro": [(BUILDING, "professional")],
    "tower_pro": [(TOWER, "professional")],
    "tower_free": [(TOWER, "free")],
    # buildings 1 and 3: the caller's masks are an array with a NULL for building 2
    "cubems_and_annex": [(BUILDING, "professional"), (ANNEX, "professional")],
}
DAY = "2019-02-01"
READINGS_PER_SENSOR = 3


@dataclass
class Buildings:
    url: str
    server_url: str
    ids: dict[str, int] = field(default_factory=dict)  # building name -> building_id
    sensors: dict[str, list[int]] = field(default_factory=dict)  # building name -> sensor ids
    free: dict[str, list[int]] = field(default_factory=dict)  # building -> free-sample ids
    users: dict[str, uuid.UUID] = field(default_factory=dict)  # each with its own login
    logins: dict[str, access.Login] = field(default_factory=dict)
    api_users: dict[str, uuid.UUID] = field(default_factory=dict)  # the Data API's: no login

    def visible(self, user: str, building: str | None = None) -> list[int]:
        """The sensor ids the user's subscriptions show (of `building` only, if given)."""
        seen: set[int] = set()
        for subscribed, tier in PERSPECTIVES[user]:
            if building in (None, subscribed):
                seen.update(self.sensors[subscribed] if tier == "professional" else [])
                seen.update(self.free[subscribed])
        return sorted(seen)


def _headers_only(folder: Path, extra_column: str | None = None) -> Path:
    """A folder of 2019's seven floor files holding just their headers: all that registering
    reads."""
    folder.mkdir()
    for floor in FLOORS:
        columns = ["Date", *floor_columns(floor)]
        if extra_column and floor == 1:
            columns.append(extra_column)
        (folder / file_name(2019, floor)).write_text(",".join(columns) + "\n")
    return folder


@pytest.fixture(scope="module")
def site(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Buildings]:
    """The three buildings, registered through the CLI, with readings, tenants and users."""
    base = tmp_path_factory.mktemp("buildings")
    sources = {
        BUILDING: _headers_only(base / "cubems"),
        TOWER: _headers_only(base / "tower", extra_column="Outdoor(degC)"),
        ANNEX: base / "annex",
    }
    sources[ANNEX].mkdir()
    (sources[ANNEX] / file_name(2019, 12)).write_text(",".join(["Date", *floor_columns(1)]) + "\n")
    (sources[TOWER] / "notes.txt").write_text("not a CU-BEMS file\n")
    names = {user: f"t_{user}_{TAG}" for user in PERSPECTIVES}
    try:
        with new_database(server_url, migrate=True) as url:
            state = Buildings(url, server_url)
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("DATABASE_URL", url)
                for name, folder in sources.items():
                    assert run(["buildings", "add", name, "--source", str(folder)]) == 0
            with psycopg.connect(url, autocommit=True) as conn:
                for registered in buildings.list_buildings(conn):
                    state.ids[registered.name] = registered.building_id
                for name, building_id in state.ids.items():
                    rows = conn.execute(
                        "SELECT sensor_id, free_sample FROM sensors WHERE building_id = %s "
                        "ORDER BY sensor_id",
                        (building_id,),
                    ).fetchall()
                    state.sensors[name] = [r[0] for r in rows]
                    state.free[name] = [r[0] for r in rows if r[1]]
                _readings(conn)
                for user, subscriptions in PERSPECTIVES.items():
                    tenant = access.create_tenant(conn, f"{user} {TAG}")
                    for building, tier in subscriptions:
                        access.subscribe(conn, tenant, state.ids[building], tier)
                    user_id, login = access.add_user_with_login(
                        conn, tenant, "viewer", f"{user}@example.org", names[user]
                    )
                    state.users[user], state.logins[user] = user_id, login
                    state.api_users[user] = access.add_user(
                        conn, tenant, "viewer", f"{user}.api@example.org"
                    )
            yield state
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            for name in names.values():
                access.drop_login(conn, name)


def _readings(conn: psycopg.Connection) -> None:
    """DAY's first minutes for every sensor of both buildings, in a month partition made for
    them, and each sensor's latest reading."""
    conn.execute(
        "CREATE TABLE partitions.sensor_readings_rows_y2019m02 PARTITION OF sensor_readings_rows "
        "FOR VALUES FROM ('2019-02-01 00:00+07') TO ('2019-03-01 00:00+07')"
    )
    conn.execute(
        "INSERT INTO sensor_readings_rows (ts, sensor_id, value) "
        "SELECT %s::timestamptz + m * interval '1 minute', s.sensor_id, s.sensor_id + m "
        "FROM sensors AS s CROSS JOIN generate_series(0, %s - 1) AS m",
        (f"{DAY} 00:00+07", READINGS_PER_SENSOR),
    )
    conn.execute(
        "INSERT INTO sensor_latest_readings (month, sensor_id, ts, value) "
        "SELECT '2019-02-01', sensor_id, max(ts), max(value) FROM sensor_readings_rows "
        "GROUP BY sensor_id"
    )


def test_the_command_registered_the_buildings_from_their_headers(site: Buildings) -> None:
    assert [site.ids[name] for name in BUILDINGS] == [1, 2, 3]
    assert len(site.sensors[BUILDING]) == len(site.sensors[TOWER]) == 204
    assert site.sensors[BUILDING] == list(range(1, 205))
    tower = (site.ids[TOWER] - 1) * BLOCK
    assert site.sensors[TOWER] == list(range(tower + 1, tower + 205))
    assert len(site.free[TOWER]) == len(site.free[BUILDING]) == 24
    with psycopg.connect(site.url) as conn:
        listed = {b.name: b for b in buildings.list_buildings(conn)}
    assert listed[TOWER].floors == 7 and listed[TOWER].zones == 33
    assert str(listed[TOWER].source).endswith("tower")
    # The layout is the headers': a floor CU-BEMS does not have is a floor of that building.
    assert (listed[ANNEX].floors, listed[ANNEX].zones) == (1, 4)
    annex = 2 * BLOCK
    assert site.sensors[ANNEX] == list(range(annex + 1, annex + len(floor_columns(1)) + 1))


def test_adding_again_registers_nothing_and_another_folder_is_refused(
    site: Buildings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", site.url)
    with psycopg.connect(site.url) as conn:
        source = buildings.find(conn, site.ids[TOWER]).source
    assert source
    assert run(["buildings", "add", TOWER, "--source", source]) == 0
    out = capsys.readouterr().out
    assert "204 sensors" in out and "0 new" in out
    assert "skipped notes.txt" in out
    assert "2019Floor1.csv: Outdoor(degC)" in out

    other = _headers_only(tmp_path / "elsewhere")
    assert run(["buildings", "add", TOWER, "--source", str(other)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is registered with the source" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(["buildings", "add", "Tower D", "--source", str(empty)]) == 1
    assert "no CU-BEMS files" in capsys.readouterr().err
    assert run(["buildings", "add", "Tower D", "--source", str(tmp_path / "missing")]) == 1
    assert "does not exist or is not a folder" in capsys.readouterr().err
    with psycopg.connect(site.url) as conn:
        assert [b.name for b in buildings.list_buildings(conn)] == list(BUILDINGS)

    assert run(["buildings", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split()[:3] == ["ID", "NAME", "FLOORS"]
    assert f"{site.sensors[TOWER][0]}..{site.sensors[TOWER][-1]}" in listing[2]


def _probe(conn: psycopg.Connection, site: Buildings) -> dict[str, object]:
    """What the connection, with a user's identity, sees of every building."""

    def ids(statement: str, *params: object) -> list[int]:
        return sorted({row[0] for row in conn.execute(statement, params).fetchall()})

    seen: dict[str, object] = {
        "buildings": ids("SELECT building_id FROM buildings"),
        "sensors": ids("SELECT sensor_id FROM sensors"),
        "readings": ids("SELECT sensor_id FROM sensor_readings"),
        "reading_rows": conn.execute("SELECT count(*) FROM sensor_readings").fetchone(),
        "latest": ids("SELECT sensor_id FROM sensor_latest_readings"),
    }
    for name in BUILDINGS:
        seen[f"api.latest_readings {name}"] = ids(
            "SELECT sensor_id FROM api.latest_readings(%s)", site.ids[name]
        )
        seen[f"api.sensor_series {name}"] = conn.execute(
            "SELECT count(*) FROM api.sensor_series(%s, %s, %s, 'raw')",
            (site.sensors[name][0], f"{DAY} 00:00+07", f"{DAY} 01:00+07"),
        ).fetchone()
    return seen


def _expected(site: Buildings, user: str) -> dict[str, object]:
    visible = site.visible(user)
    expected: dict[str, object] = {
        "buildings": sorted(site.ids[building] for building, _ in PERSPECTIVES[user]),
        "sensors": visible,
        "readings": visible,
        "reading_rows": (len(visible) * READINGS_PER_SENSOR,),
        "latest": visible,
    }
    for name in BUILDINGS:
        expected[f"api.latest_readings {name}"] = site.visible(user, name)
        shown = site.sensors[name][0] in visible
        expected[f"api.sensor_series {name}"] = (READINGS_PER_SENSOR if shown else 0,)
    return expected


@pytest.mark.parametrize("user", list(PERSPECTIVES))
def test_a_tenant_sees_exactly_its_subscriptions_and_nothing_of_other_buildings(
    site: Buildings, user: str
) -> None:
    login_url = site.logins[user].url(site.url)
    with psycopg.connect(login_url) as conn, access.acting_as(conn, site.users[user]):
        assert _probe(conn, site) == _expected(site, user)
    with psycopg.connect(login_url, autocommit=True) as conn:  # without the claim: nothing
        assert conn.execute("SELECT count(*) FROM sensor_readings").fetchone() == (0,)


@pytest.mark.parametrize("server", ["supabase15"], indirect=True, scope="session")
@pytest.mark.parametrize("user", list(PERSPECTIVES))
def test_through_supabases_authenticator_as_authenticated_too(
    site: Buildings, user: str, server_url: str
) -> None:
    dbname = str(psycopg.conninfo.conninfo_to_dict(site.url)["dbname"])
    url = with_database(psycopg.conninfo.make_conninfo(server_url, user="authenticator"), dbname)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier("authenticated")))
        conn.execute(
            "SELECT set_config('request.jwt.claims', %s, false)",
            (access.claims(site.api_users[user]),),
        )
        assert _probe(conn, site) == _expected(site, user)
