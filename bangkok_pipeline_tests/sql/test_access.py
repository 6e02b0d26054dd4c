"""Multi-tenant access on a real server with real login roles: RLS, roles, the API, the check.

One month (2019-02, its first DAYS days: the tests look no further) is generated and loaded once
per module through the real assets, by a login
that is neither superuser nor BYPASSRLS (a member of bangkok_loader). Tenants, users and
subscriptions are then provisioned as the service, and the tests connect as non-owner login roles
granted only bangkok_api, one per app user (each user's identity is pinned to its own login).
The last test downgrades 0004 on that database and upgrades it again.
"""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg
import pytest
from psycopg import errors, sql
from psycopg.abc import Params

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.core.settings import BANGKOK_TZ
from bangkok_pipeline.db import migrations
from bangkok_pipeline.defs.ingestion.assets import (
    load_month_partitions,
    raw_readings,
    validated_readings,
)
from bangkok_pipeline.defs.ingestion.checks import api_roles_cannot_bypass_rls, ingestion_checks
from bangkok_pipeline.defs.resources import LayersResource, PostgresResource, SourceDirectory
from bangkok_pipeline.devtools import api_bench
from bangkok_pipeline.devtools.generator import generate
from bangkok_pipeline.devtools.sample import keep_first_days
from bangkok_pipeline.transform.layers import run_layers
from bangkok_pipeline.warehouse import access, compression, quality
from bangkok_pipeline.warehouse.ingest import load_month
from bangkok_pipeline_tests.conftest import building_instance, cubems, new_database

pytestmark = [pytest.mark.integration, pytest.mark.hosted]

MONTH = "2019-02"
DAYS = 10  # of the month generated and loaded
DAY = "2019-02-10"  # a Bangkok day inside them
ASSETS = [raw_readings, validated_readings, load_month_partitions, *ingestion_checks]
NOW = datetime.now(UTC)
# tenant -> (building "main"/"other", tier, status, starts_at, expires_at); None: no subscription
TENANTS: dict[str, tuple[str, str, str, datetime, datetime | None] | None] = {
    "pro": ("main", "professional", "active", NOW - timedelta(days=30), None),
    "free": ("main", "free", "active", NOW - timedelta(days=30), NOW + timedelta(days=30)),
    "expired": (
        "main",
        "professional",
        "active",
        NOW - timedelta(days=60),
        NOW - timedelta(days=1),
    ),
    "cancelled": ("main", "professional", "cancelled", NOW - timedelta(days=30), None),
    "suspended": ("main", "professional", "suspended", NOW - timedelta(days=30), None),
    "future": ("main", "professional", "active", NOW + timedelta(days=1), None),
    "none": None,
    "other": ("other", "professional", "active", NOW - timedelta(days=30), None),
}
USERS = {  # user -> (tenant, role)
    "pro_admin": ("pro", "admin"),
    "pro_analyst": ("pro", "analyst"),
    "pro_viewer": ("pro", "viewer"),
    "free_analyst": ("free", "analyst"),
    "expired_viewer": ("expired", "viewer"),
    "cancelled_viewer": ("cancelled", "viewer"),
    "suspended_viewer": ("suspended", "viewer"),
    "future_viewer": ("future", "viewer"),
    "none_admin": ("none", "admin"),
    "other_admin": ("other", "admin"),
}
SENSOR_TABLES = ("sensors", "sensor_readings", "hourly_sensor_stats", "daily_sensor_stats")
API_CALLS = (
    "SELECT * FROM api.latest_readings(%(building)s)",
    "SELECT * FROM api.daily_zone_energy(%(building)s, '2019-02-01', '2019-02-28')",
    "SELECT * FROM api.building_daily_totals(%(building)s, '2019-02-01', '2019-02-28')",
    "SELECT * FROM api.zone_comfort(%(building)s, '2019-02-01', '2019-02-28')",
)

Statement = str | sql.SQL | sql.Composed  # what World runs: a query without a template


@dataclass
class User:
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    login: access.Login


@dataclass
class World:
    """The loaded database (superuser URL), its tenants, users and their logins."""

    url: str
    building: int
    other_building: int
    other_sensor: int
    result: dg.ExecuteInProcessResult
    loader: access.Login
    tenants: dict[str, uuid.UUID] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)

    def owner(self, statement: Statement, params: Params | None = None) -> list[tuple]:
        """As the superuser (RLS bypassed): the ground truth."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    @contextmanager
    def connect(self, name: str) -> Iterator[psycopg.Connection]:
        with psycopg.connect(self.users[name].login.url(self.url), autocommit=True) as conn:
            yield conn

    def run(self, name: str, statement: Statement, params: Params | None = None) -> list[tuple]:
        """As user `name`: their login, their claim, one transaction."""
        with self.connect(name) as conn, access.acting_as(conn, self.users[name].user_id):
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def rowcount(self, name: str, statement: Statement, params: Params | None = None) -> int:
        with self.connect(name) as conn, access.acting_as(conn, self.users[name].user_id):
            return conn.execute(statement, params).rowcount

    def refused(
        self, name: str, statement: Statement, params: Params | None = None
    ) -> psycopg.Error:
        with pytest.raises(psycopg.Error) as caught:
            self.run(name, statement, params)
        return caught.value


def _provision(conn: psycopg.Connection, world: World, tag: str) -> list[str]:
    """Tenants, a second building with one sensor, subscriptions, owners, users with logins."""
    other = conn.execute(
        "INSERT INTO buildings (name) VALUES ('Test Tower') RETURNING building_id"
    ).fetchone()
    assert other
    world.other_building = other[0]
    conn.execute("INSERT INTO floors VALUES (%s, 1)", (other[0],))
    conn.execute("INSERT INTO zones VALUES (%s, 1, 1)", (other[0],))
    sensor = conn.execute(
        "INSERT INTO sensors (building_id, floor, zone, channel, kind, unit, source_column) "
        "VALUES (%s, 1, 1, 'Light', 'light', 'kW', 'z1_Light(kW)') RETURNING sensor_id",
        (other[0],),
    ).fetchone()
    assert sensor
    world.other_sensor = sensor[0]
    assert world.other_sensor == (other[0] - 1) * 32768 + 1  # its building's block, past smallint
    buildings = {"main": world.building, "other": world.other_building}
    for name, subscription in TENANTS.items():
        world.tenants[name] = access.create_tenant(conn, f"{name} {tag}")
        if subscription:
            where, tier, status, starts, expires = subscription
            access.subscribe(conn, world.tenants[name], buildings[where], tier, status, starts)
            if expires:
                conn.execute(
                    "UPDATE subscriptions SET expires_at = %s WHERE tenant_id = %s",
                    (expires, world.tenants[name]),
                )
    conn.execute(
        "INSERT INTO building_owners VALUES (%s, %s), (%s, %s)",
        (world.building, world.tenants["pro"], world.other_building, world.tenants["other"]),
    )
    logins = []
    for name, (tenant, role) in USERS.items():
        login = access.create_login(conn, f"t_{name}_{tag}", access.API_ROLE)
        logins.append(login.name)
        user_id = access.add_user(
            conn, world.tenants[tenant], role, f"{name}@example.org", login.name
        )
        world.users[name] = User(user_id, world.tenants[tenant], login)
    for name in ("pro_admin", "other_admin"):
        conn.execute(
            "INSERT INTO saved_queries (tenant_id, user_id, name, api_function) "
            "VALUES (%s, %s, 'seeded', 'latest_readings')",
            (world.users[name].tenant_id, world.users[name].user_id),
        )
    return logins


@pytest.fixture(scope="module")
def world(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    source = tmp_path_factory.mktemp("source")
    generate(source, [Month(2019, 2)], seed=7)
    for path in source.glob("*Floor*.csv"):
        keep_first_days(path, DAYS)
    tag = uuid.uuid4().hex[:8]
    logins = [f"t_loader_{tag}"]
    try:
        with (
            pytest.MonkeyPatch.context() as patch,
            new_database(server_url, migrate=True) as url,
        ):
            patch.setenv("BANGKOK_HOME", str(tmp_path_factory.mktemp("home")))
            # The month as rows: these tests name its partitions; the compressed tier's access
            # is tested in warehouse/test_compression.py.
            patch.setenv("BANGKOK_COMPRESS_AFTER_MONTHS", "off")
            with psycopg.connect(url, autocommit=True) as conn:
                loader = access.create_login(
                    conn, logins[0], access.LOADER_ROLE, act_as_member=True
                )
            result = dg.materialize(
                ASSETS,
                partition_key=cubems(MONTH),
                resources={
                    "database": PostgresResource(database_url=loader.url(url)),
                    "source": SourceDirectory(path=str(source)),
                    "layers": LayersResource(),
                },
                instance=building_instance(),
                raise_on_error=False,
            )
            assert result.success, [e.message for e in result.all_events if e.is_failure]
            with psycopg.connect(url, autocommit=True) as conn:
                building = conn.execute("SELECT building_id FROM buildings").fetchone()
                assert building
                state = World(url, building[0], 0, 0, result, loader)
                logins += _provision(conn, state, tag)
            yield state
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            for name in logins:
                access.drop_login(conn, name)


def _count(world: World, name: str, table: str) -> int:
    rows = world.run(name, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
    return int(rows[0][0])


def test_a_superuser_less_loader_loaded_the_month_and_every_check_passed(world: World) -> None:
    attributes = world.owner(
        "SELECT rolsuper, rolbypassrls, rolcreaterole FROM pg_roles WHERE rolname = %s",
        (world.loader.name,),
    )
    assert attributes == [(False, False, False)]
    checks = {e.check_name: e.passed for e in world.result.get_asset_check_evaluations()}
    assert checks["api_roles_cannot_bypass_rls"] is True
    assert checks["reconciliation"] is True and checks["aggregates_match_raw"] is True
    owners = world.owner(
        "SELECT DISTINCT relowner::regrole::text FROM pg_class "
        "WHERE relnamespace = 'partitions'::regnamespace AND relkind IN ('r', 'p')"
    )
    assert owners == [(access.LOADER_ROLE,)]  # any loader login can replace the month later
    assert world.owner("SELECT count(*) FROM sensor_latest_readings")[0][0] > 200


def test_another_loader_login_replaces_the_month(world: World) -> None:
    partition = f"partitions.sensor_readings_rows_y{MONTH.replace('-', 'm')}_b1"
    before = world.owner("SELECT %s::regclass::oid, count(*) FROM sensor_readings", (partition,))
    name = f"t_loader2_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(world.url, autocommit=True) as conn:
        second = access.create_login(conn, name, access.LOADER_ROLE, act_as_member=True)
    try:
        with psycopg.connect(second.url(world.url), autocommit=True) as conn:
            load_month(
                conn, run_layers(Month.parse(MONTH), "second-loader", published_fallback=True)
            )
        owned = world.owner("SELECT count(*) FROM pg_class WHERE relowner = %s::regrole", (name,))
        assert owned == [(0,)]  # its sessions act as bangkok_loader, which owns the partitions
    finally:
        with psycopg.connect(world.url, autocommit=True) as conn:
            access.drop_login(conn, name)
    after = world.owner("SELECT %s::regclass::oid, count(*) FROM sensor_readings", (partition,))
    assert after[0][0] != before[0][0] and after[0][1] == before[0][1]
    assert _count(world, "pro_viewer", "sensor_readings") == before[0][1]


def test_a_loader_login_loads_the_month_compressed_and_the_checks_and_rls_hold(
    world: World,
) -> None:
    """The default policy's path as a login with only bangkok_loader: the month straight into
    the compressed tier, its ledger and aggregates checked, the same readings and hours for a
    subscriber; then back to rows for the other tests."""
    month = Month.parse(MONTH)
    hours = "SELECT bucket, sensor_id, readings, min_value, max_value FROM hourly_aggregates"
    before = (_count(world, "pro_viewer", "sensor_readings"), world.run("pro_viewer", hours))
    with psycopg.connect(world.loader.url(world.url), autocommit=True) as conn:
        loaded = load_month(
            conn,
            run_layers(month, "compressed-loader", published_fallback=True),
            keep_as_rows=0,
        )
        assert loaded.compressed and compression.tiers(conn) == {month: "compressed"}
        try:
            assert quality.reconcile_live(conn, month, "compressed-loader") == []
            assert quality.aggregate_mismatches(conn, month) == []
            after = (_count(world, "pro_viewer", "sensor_readings"), world.run("pro_viewer", hours))
            assert after[0] == before[0] > 0
            assert sorted(after[1]) == sorted(before[1])
        finally:
            compression.decompress(conn, [month])
    assert world.owner("SELECT count(*) FROM sensor_readings_days") == [(0,)]


def test_professional_sees_the_whole_building_and_the_api_serves_it(world: World) -> None:
    for table in SENSOR_TABLES:
        expected = world.owner(
            sql.SQL("SELECT count(*) FROM {} WHERE sensor_id <> %s").format(sql.Identifier(table)),
            (world.other_sensor,),
        )[0][0]
        assert _count(world, "pro_viewer", table) == expected > 0
    latest = world.run(
        "pro_viewer", "SELECT sensor_id, ts, value FROM api.latest_readings(%s)", (world.building,)
    )
    raw = world.owner(
        "SELECT DISTINCT ON (sensor_id) sensor_id, ts, value FROM sensor_readings "
        "ORDER BY sensor_id, ts DESC"
    )
    assert latest == raw
    for call in API_CALLS:
        params = {"building": world.building}
        assert world.run("pro_analyst", call, params) == world.owner(call, params) != []


def test_sensor_series_serves_raw_readings_and_the_aggregates(world: World) -> None:
    sensor = world.owner("SELECT min(sensor_id) FROM sensors WHERE unit = 'kW'")[0][0]
    window = (sensor, f"{DAY} 00:00+07", f"{DAY} 06:00+07")
    raw = world.run(
        "pro_viewer",
        "SELECT bucket, avg_value FROM api.sensor_series(%s, %s, %s, 'raw')",
        window,
    )
    assert raw == world.owner(
        "SELECT ts, value::float8 FROM sensor_readings WHERE sensor_id = %s "
        "AND ts >= %s AND ts < %s ORDER BY ts",
        window,
    )
    assert len(raw) > 300
    hourly = world.run(
        "pro_viewer", "SELECT bucket, readings FROM api.sensor_series(%s, %s, %s, 'hour')", window
    )
    assert len(hourly) == 6 and sum(n for _, n in hourly) == len(raw)
    daily = world.run(
        "pro_viewer",
        "SELECT bucket, readings FROM api.sensor_series(%s, '2019-02-03 12:00+07', "
        "'2019-02-06 00:00+07', 'day')",
        (sensor,),
    )
    assert [str(bucket.astimezone(BANGKOK_TZ)) for bucket, _ in daily] == [
        "2019-02-04 00:00:00+07:00",
        "2019-02-05 00:00:00+07:00",
    ]


def test_free_sees_exactly_its_documented_sample(world: World) -> None:
    sample = world.owner(
        "SELECT sensor_id FROM sensors WHERE building_id = %s AND zone = 2 AND floor %% 2 = 1 "
        "ORDER BY 1",
        (world.building,),
    )
    assert len(sample) == 24
    assert world.run("free_analyst", "SELECT sensor_id FROM sensors ORDER BY 1") == sample
    for table in SENSOR_TABLES[1:]:
        expected = world.owner(
            sql.SQL(
                "SELECT count(*) FROM {} JOIN sensors USING (sensor_id) WHERE free_sample"
            ).format(sql.Identifier(table))
        )[0][0]
        assert _count(world, "free_analyst", table) == expected > 0
    readings = world.run("free_analyst", "SELECT count(DISTINCT sensor_id) FROM sensor_readings")
    assert readings == [(24,)]
    latest = world.run("free_analyst", "SELECT sensor_id FROM api.latest_readings(1)")
    assert latest == sample
    zones = world.run(
        "free_analyst",
        "SELECT DISTINCT floor, zone FROM api.daily_zone_energy(1, '2019-02-01', '2019-02-28') "
        "WHERE zone IS NOT NULL ORDER BY 1, 2",
    )
    assert zones == [(1, 2), (3, 2), (5, 2), (7, 2)]
    outside = world.owner("SELECT min(sensor_id) FROM sensors WHERE NOT free_sample")[0][0]
    series = "SELECT count(*) FROM api.sensor_series(%s, %s, %s, 'raw')"
    window = (f"{DAY} 00:00+07", f"{DAY} 12:00+07")
    assert world.run("free_analyst", series, (outside, *window)) == [(0,)]
    assert world.run("free_analyst", series, (sample[0][0], *window))[0][0] > 300


@pytest.mark.parametrize(
    "name",
    ["expired_viewer", "cancelled_viewer", "suspended_viewer", "future_viewer", "none_admin"],
)
def test_no_active_subscription_sees_nothing(world: World, name: str) -> None:
    for table in (*SENSOR_TABLES, "sensor_latest_readings", "buildings", "floors", "zones"):
        assert _count(world, name, table) == 0, table
    for call in API_CALLS:
        assert world.run(name, call, {"building": world.building}) == []
    assert world.run(name, "SELECT count(*) FROM tenants") == [(1,)]  # its own tenant only


def test_no_identity_or_someone_elses_identity_sees_nothing(world: World) -> None:
    viewer = world.users["pro_viewer"]
    with world.connect("pro_viewer") as conn:
        assert conn.execute("SELECT count(*) FROM sensor_readings").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM app_users").fetchone() == (0,)
    # free_analyst's login claiming the professional viewer: the identity is pinned to its login
    with world.connect("free_analyst") as conn, access.acting_as(conn, viewer.user_id):
        assert conn.execute("SELECT count(*) FROM sensors").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM tenants").fetchone() == (0,)
    with (
        world.connect("pro_viewer") as conn,
        pytest.raises(errors.InvalidTextRepresentation),
        access.acting_as(conn, "' OR '1'='1"),
    ):
        conn.execute("SELECT count(*) FROM sensors")


def test_tenants_neither_read_nor_write_each_other(world: World) -> None:
    pro, other = world.users["pro_admin"], world.users["other_admin"]
    for table in ("tenants", "app_users", "subscriptions", "saved_queries", "building_owners"):
        tenants = world.run(
            "pro_admin", sql.SQL("SELECT DISTINCT tenant_id FROM {}").format(sql.Identifier(table))
        )
        assert tenants == [(pro.tenant_id,)], table
    assert (
        world.run(
            "pro_admin", "SELECT 1 FROM sensors WHERE building_id = %s", (world.other_building,)
        )
        == []
    )
    assert world.run("other_admin", "SELECT sensor_id FROM sensors") == [(world.other_sensor,)]
    assert world.run("other_admin", "SELECT count(*) FROM sensor_readings") == [(0,)]
    assert world.run("other_admin", "SELECT * FROM api.latest_readings(%s)", (1,)) == []
    error = world.refused(
        "pro_admin",
        "INSERT INTO app_users (user_id, tenant_id, role, email) VALUES (%s, %s, 'admin', 'x@y')",
        (uuid.uuid4(), other.tenant_id),
    )
    assert isinstance(error, errors.InsufficientPrivilege)
    assert "row-level security" in str(error)
    assert world.rowcount("pro_admin", "UPDATE app_users SET email = email") == 3
    assert (
        world.rowcount(
            "pro_admin", "UPDATE app_users SET role = 'viewer' WHERE user_id = %s", (other.user_id,)
        )
        == 0
    )
    assert world.rowcount("pro_admin", "DELETE FROM saved_queries WHERE name = 'seeded'") == 1
    assert world.owner(
        "SELECT count(*) FROM saved_queries WHERE user_id = %s", (other.user_id,)
    ) == [(1,)]
    assert (
        world.rowcount(
            "pro_admin",
            "UPDATE subscriptions SET status = 'cancelled' WHERE tenant_id = %s",
            (other.tenant_id,),
        )
        == 0
    )


def test_a_viewer_cannot_write(world: World) -> None:
    sensor = world.owner("SELECT min(sensor_id) FROM sensors")[0][0]
    statements = [
        ("INSERT INTO saved_queries (name, api_function) VALUES ('v', 'zone_comfort')", ()),
        ("INSERT INTO annotations (sensor_id, starts_at, note) VALUES (%s, now(), 'n')", (sensor,)),
        ("INSERT INTO subscriptions (building_id, tier) VALUES (1, 'free')", ()),
        ("INSERT INTO sensor_readings_rows VALUES (now(), 1, 1)", ()),
        ("DELETE FROM sensor_readings_rows", ()),
        ("DELETE FROM sensor_readings_days", ()),
        ("UPDATE sensors SET zone = 9", ()),
    ]
    for statement, params in statements:
        assert isinstance(
            world.refused("pro_viewer", statement, params), errors.InsufficientPrivilege
        ), statement
    # The view of both tiers takes no writes from anyone.
    refused = world.refused("pro_viewer", "DELETE FROM sensor_readings", ())
    assert isinstance(refused, errors.InsufficientPrivilege | errors.ObjectNotInPrerequisiteState)
    assert world.rowcount("pro_viewer", "UPDATE app_users SET role = 'admin'") == 0
    assert world.rowcount("pro_viewer", "DELETE FROM saved_queries") == 0


def test_analysts_save_and_change_their_own_queries_and_annotations_only(world: World) -> None:
    analyst, admin = world.users["pro_analyst"], world.users["pro_admin"]
    world.run(
        "pro_analyst",
        "INSERT INTO saved_queries (name, api_function, arguments) "
        "VALUES ('mine', 'daily_zone_energy', '{\"p_building_id\": 1}')",
    )
    rows = world.owner("SELECT tenant_id, user_id FROM saved_queries WHERE name = 'mine'")
    assert rows == [(analyst.tenant_id, analyst.user_id)]
    assert world.run("pro_viewer", "SELECT name FROM saved_queries WHERE name = 'mine'") == [
        ("mine",)
    ]
    world.owner(
        "INSERT INTO saved_queries (tenant_id, user_id, name, api_function) "
        "VALUES (%s, %s, 'admins', 'zone_comfort')",
        (admin.tenant_id, admin.user_id),
    )
    assert world.rowcount("pro_analyst", "UPDATE saved_queries SET name = 'x'") == 1
    assert world.rowcount("pro_analyst", "DELETE FROM saved_queries WHERE name = 'admins'") == 0
    error = world.refused(
        "pro_analyst",
        "INSERT INTO saved_queries (user_id, name, api_function) VALUES (%s, 'f', 'zone_comfort')",
        (admin.user_id,),
    )
    assert isinstance(error, errors.InsufficientPrivilege)
    sample = world.owner("SELECT min(sensor_id) FROM sensors WHERE free_sample")[0][0]
    outside = world.owner("SELECT min(sensor_id) FROM sensors WHERE NOT free_sample")[0][0]
    note = "INSERT INTO annotations (sensor_id, starts_at, note) VALUES (%s, now(), 'spike')"
    world.run("free_analyst", note, (sample,))
    assert isinstance(world.refused("free_analyst", note, (outside,)), errors.InsufficientPrivilege)
    world.owner("DELETE FROM saved_queries WHERE name IN ('x', 'admins')")


def test_admins_manage_their_own_tenant_users_and_subscriptions_only(world: World) -> None:
    admin, other = world.users["pro_admin"], world.users["other_admin"]
    newcomer = uuid.uuid4()
    world.run(
        "pro_admin",
        "INSERT INTO app_users (user_id, role, email) VALUES (%s, 'viewer', 'new@example.org')",
        (newcomer,),
    )
    assert world.owner("SELECT tenant_id FROM app_users WHERE user_id = %s", (newcomer,)) == [
        (admin.tenant_id,)
    ]
    assert (
        world.rowcount(
            "pro_admin", "UPDATE app_users SET role = 'analyst' WHERE user_id = %s", (newcomer,)
        )
        == 1
    )
    assert world.rowcount("pro_admin", "DELETE FROM app_users WHERE user_id = %s", (newcomer,)) == 1
    assert (
        world.rowcount("pro_admin", "DELETE FROM app_users WHERE user_id = %s", (admin.user_id,))
        == 0
    )  # not themselves
    assert (
        world.rowcount("other_admin", "DELETE FROM app_users WHERE user_id = %s", (admin.user_id,))
        == 0
    )
    for name in ("pro_analyst", "pro_viewer"):
        error = world.refused(
            name,
            "INSERT INTO app_users (user_id, role, email) VALUES (%s, 'admin', 'me@x.org')",
            (uuid.uuid4(),),
        )
        assert isinstance(error, errors.InsufficientPrivilege)
    # free for any building, professional only for a building the tenant owns; then cancel
    created = world.run(
        "other_admin",
        "INSERT INTO subscriptions (building_id, tier) VALUES (%s, 'free') "
        "RETURNING subscription_id",
        (world.building,),
    )
    world.run(
        "other_admin",
        "INSERT INTO subscriptions (building_id, tier) VALUES (%s, 'professional')",
        (world.other_building,),
    )
    error = world.refused(
        "other_admin",
        "INSERT INTO subscriptions (building_id, tier) VALUES (%s, 'professional')",
        (world.building,),
    )
    assert isinstance(error, errors.InsufficientPrivilege)
    error = world.refused(
        "other_admin",
        "INSERT INTO subscriptions (tenant_id, building_id, tier) VALUES (%s, %s, 'free')",
        (admin.tenant_id, world.building),
    )
    assert isinstance(error, errors.InsufficientPrivilege)
    cancel = "UPDATE subscriptions SET status = %s WHERE subscription_id = %s"
    assert world.rowcount("pro_admin", cancel, ("cancelled", created[0][0])) == 0
    assert world.rowcount("other_admin", cancel, ("cancelled", created[0][0])) == 1
    assert isinstance(
        world.refused("other_admin", cancel, ("active", created[0][0])),
        errors.InsufficientPrivilege,
    )
    world.owner(
        "DELETE FROM subscriptions WHERE tenant_id = %s AND subscription_id <> "
        "(SELECT min(subscription_id) FROM subscriptions WHERE tenant_id = %s)",
        (other.tenant_id, other.tenant_id),
    )


@pytest.mark.parametrize(
    "argument",
    [
        "hour'; DROP TABLE sensors; --",
        "raw') UNION SELECT now(), 1, 1, 1, 1, 1 FROM app_users --",
        "day\\'; SELECT pg_sleep(5); --",
    ],
)
def test_sql_injection_through_api_arguments_does_nothing(world: World, argument: str) -> None:
    before = world.owner("SELECT count(*) FROM sensors")
    error = world.refused(
        "free_analyst",
        "SELECT * FROM api.sensor_series(1, now() - interval '1 day', now(), %s)",
        (argument,),
    )
    assert isinstance(error, errors.InvalidParameterValue)
    assert "p_bucket must be raw, hour or day" in str(error)
    error = world.refused("free_analyst", "SELECT * FROM api.latest_readings(%s)", (argument,))
    assert isinstance(error, errors.UndefinedFunction | errors.InvalidTextRepresentation)
    world.run(
        "pro_analyst",
        "INSERT INTO saved_queries (name, api_function, arguments) "
        "VALUES (%s, 'sensor_series', jsonb_build_object('p_bucket', %s::text))",
        (argument, argument),
    )
    assert world.owner("SELECT name FROM saved_queries WHERE name = %s", (argument,)) == [
        (argument,)
    ]
    assert world.owner("SELECT count(*) FROM sensors") == before
    world.owner("DELETE FROM saved_queries WHERE name = %s", (argument,))


@pytest.mark.parametrize(
    ("call", "params", "error", "message"),
    [
        (
            "SELECT * FROM api.latest_readings(%s)",
            (None,),
            errors.NullValueNotAllowed,
            "p_building_id must",
        ),
        (
            "SELECT * FROM api.latest_readings(%s)",
            (0,),
            errors.InvalidParameterValue,
            "between 1 and 32767",
        ),
        (
            "SELECT * FROM api.sensor_series(%s, %s, %s, 'raw')",
            (0, "2019-02-01", "2019-02-02"),
            errors.InvalidParameterValue,
            "p_sensor_id must be a sensor id (1 or more), got 0",
        ),
        (
            "SELECT * FROM api.sensor_series(%s, %s, %s, 'raw')",
            (1, "2019-02-02", "2019-02-01"),
            errors.InvalidParameterValue,
            "must be before p_to",
        ),
        (
            "SELECT * FROM api.sensor_series(%s, %s, %s, 'raw')",
            (1, "2019-01-01", "2019-03-01"),
            errors.InvalidParameterValue,
            "at most 31 days per call",
        ),
        (
            "SELECT * FROM api.sensor_series(%s, %s, %s)",
            (1, "-infinity", "2019-03-01"),
            errors.InvalidParameterValue,
            "finite timestamps",
        ),
        (
            "SELECT * FROM api.daily_zone_energy(1, %s, %s)",
            ("2019-03-01", "2019-02-01"),
            errors.InvalidParameterValue,
            "p_first_day (2019-03-01) is after p_last_day (2019-02-01)",
        ),
        (
            "SELECT * FROM api.zone_comfort(1, %s, %s)",
            ("2018-01-01", "2019-12-31"),
            errors.InvalidParameterValue,
            "at most 366 days per call",
        ),
        (
            "SELECT * FROM api.building_daily_totals(1, %s, %s)",
            (None, "2019-02-01"),
            errors.NullValueNotAllowed,
            "must not be null",
        ),
    ],
)
def test_api_parameters_are_validated_with_clear_errors(
    world: World, call: str, params: tuple, error: type[psycopg.Error], message: str
) -> None:
    caught = world.refused("pro_viewer", call, params)
    assert isinstance(caught, error)
    assert message in str(caught)


def test_api_roles_cannot_reach_partitions_side_tables_or_private_code(world: World) -> None:
    partition = sql.Identifier("partitions", f"sensor_readings_rows_y{MONTH.replace('-', 'm')}")
    statements: list[Statement] = [
        sql.SQL("SELECT count(*) FROM {}").format(partition),
        "SELECT count(*) FROM load_log",
        "SELECT count(*) FROM quarantine",
        "SELECT count(*) FROM reconciliation",
        "SELECT count(*) FROM schema_migrations",
        "SELECT count(*) FROM month_locks",
        "SELECT month FROM month_locks FOR UPDATE",
        "LOCK TABLE private.building_sensor_masks IN SHARE UPDATE EXCLUSIVE MODE",
        "LOCK TABLE schema_migrations IN SHARE UPDATE EXCLUSIVE MODE",
        "CREATE TABLE partitions.mine (x int)",
        "CREATE FUNCTION private.visible_sensor_ids() RETURNS smallint[] LANGUAGE sql "
        "AS 'SELECT ARRAY[1::smallint]'",
        "CREATE TABLE api.mine (x int)",
        "ALTER POLICY api_read ON sensor_readings USING (true)",
        "ALTER TABLE sensors DISABLE ROW LEVEL SECURITY",
        "SET ROLE bangkok_loader",
    ]
    for statement in statements:
        assert isinstance(world.refused("pro_admin", statement), errors.InsufficientPrivilege), (
            statement
        )
    assert world.owner(  # extensions' own views (pg_stat_statements) aside
        "SELECT count(*) FROM pg_class AS c, aclexplode(c.relacl) AS a WHERE a.grantee = 0 "
        "AND c.relnamespace IN ('public'::regnamespace, 'partitions'::regnamespace) "
        "AND NOT EXISTS (SELECT 1 FROM pg_depend AS d WHERE d.objid = c.oid AND d.deptype = 'e')"
    ) == [(0,)]
    assert world.owner(
        "SELECT count(*) FROM pg_proc WHERE pronamespace IN "
        "('api'::regnamespace, 'private'::regnamespace) "
        "AND has_function_privilege('public', oid, 'EXECUTE')"
    ) == [(0,)]


def test_the_check_fails_when_an_api_role_gains_a_privilege_on_a_partition(world: World) -> None:
    def check() -> dg.AssetCheckResult:
        """The Dagster check itself, invoked for the month with the loader's connection (the
        materialization in the fixture ran it once already: it passed there)."""
        context = dg.build_op_context(
            partition_key=cubems(MONTH),
            resources={"database": PostgresResource(database_url=world.loader.url(world.url))},
        )
        return api_roles_cannot_bypass_rls(context)  # type: ignore[return-value]

    assert check().passed
    partition = sql.Identifier("partitions", f"hourly_sensor_stats_y{MONTH.replace('-', 'm')}")
    login = sql.Identifier(world.users["pro_viewer"].login.name)
    grants: list[tuple[Statement, Statement]] = [
        (
            sql.SQL("GRANT SELECT ON {} TO bangkok_api").format(partition),
            sql.SQL("REVOKE SELECT ON {} FROM bangkok_api").format(partition),
        ),
        (
            sql.SQL("GRANT UPDATE (n) ON {} TO {}").format(partition, login),
            sql.SQL("REVOKE UPDATE (n) ON {} FROM {}").format(partition, login),
        ),
        (
            sql.SQL("GRANT SELECT ON quarantine TO PUBLIC"),
            sql.SQL("REVOKE SELECT ON quarantine FROM PUBLIC"),
        ),
    ]
    for grant, revoke in grants:
        world.owner(grant)
        try:
            evaluation = check()
            assert not evaluation.passed
            found = evaluation.metadata["privileges_found"].value
            assert isinstance(found, int) and found >= 1
        finally:
            world.owner(revoke)
    world.owner("ALTER TABLE sensors NO FORCE ROW LEVEL SECURITY")
    try:
        evaluation = check()
        assert not evaluation.passed
        assert evaluation.metadata["tables_without_forced_rls"].value == ["sensors"]
    finally:
        world.owner("ALTER TABLE sensors FORCE ROW LEVEL SECURITY")
    assert check().passed


def test_the_api_benchmark_runs_both_identities(world: World) -> None:
    results = api_bench.run_api_bench(
        world.url, clients=(2,), seconds=1, warmup=0, functions=("latest_readings",), rounds=1
    )
    assert [(r.identity, r.clients) for r in results] == [("api", 2), ("owner", 2)]
    assert all(r.transactions > 0 and 0 < r.p50_ms <= r.p95_ms <= r.p99_ms for r in results)
    assert "latest_readings" in api_bench.report(results)
    bench_roles = "SELECT count(*) FROM pg_roles WHERE starts_with(rolname, 'bangkok_bench_')"
    assert world.owner(bench_roles) == [(0,)]


def _footprint(url: str) -> dict[str, int]:
    """What 0004 leaves in a database: policies, RLS flags, its schemas (Supabase's `auth` is not
    one, nor are its Storage tables' RLS flags), and every dependency (ownership, grants, policy
    roles) of this database on the cluster-wide roles."""
    roles = [access.OWNER_ROLE, access.LOADER_ROLE, access.API_ROLE]
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM pg_policy), "
            "(SELECT count(*) FROM pg_class WHERE (relrowsecurity OR relforcerowsecurity) "
            "AND relnamespace::regnamespace::text <> 'storage'), "
            "(SELECT count(*) FROM pg_namespace WHERE nspname IN ('api', 'private') "
            "OR obj_description(oid, 'pg_namespace') LIKE 'bangkok_pipeline:%%'), "
            "(SELECT count(*) FROM pg_shdepend WHERE dbid = (SELECT oid FROM pg_database "
            "WHERE datname = current_database()) AND refobjid IN "
            "(SELECT oid FROM pg_roles WHERE rolname = ANY (%s)))",
            (roles,),
        ).fetchone()
    assert row
    return dict(zip(("policies", "rls_tables", "schemas", "role_dependencies"), row, strict=True))


def test_downgrade_removes_0004_cleanly_without_touching_other_databases(
    world: World, server_url: str
) -> None:
    readings = world.owner("SELECT count(*) FROM sensor_readings")
    with new_database(server_url, migrate=True) as bystander:
        assert _footprint(bystander)["policies"] > 30
        with psycopg.connect(world.url, autocommit=True) as conn:
            # 0009 holds only smallint ids: the second building's sensor (32,769) stops it
            with pytest.raises(migrations.MigrationError, match="ids above 32767 exist"):
                migrations.downgrade(conn, 3)
            assert migrations.current_version(conn) == 10  # each step whole: 0011 went down
            for table in ("annotations", "sensors"):
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE sensor_id = %s").format(sql.Identifier(table)),
                    (world.other_sensor,),
                )
            migrations.downgrade(conn, 3)
        assert _footprint(world.url) == dict.fromkeys(
            ("policies", "rls_tables", "schemas", "role_dependencies"), 0
        )
        assert world.owner("SELECT count(*) FROM sensor_readings") == readings
        assert world.owner(
            "SELECT DISTINCT relowner::regrole::text FROM pg_class "
            "WHERE relnamespace = 'partitions'::regnamespace"
        ) == world.owner("SELECT current_user::text")
        # the other database and the roles are untouched
        assert _footprint(bystander)["policies"] > 30
        assert world.owner(
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'bangkok\\_%%' "
            "AND rolname IN ('bangkok_owner', 'bangkok_loader', 'bangkok_api')"
        ) == [(3,)]
        with psycopg.connect(world.url, autocommit=True) as conn:
            migrations.migrate(conn)
        assert _footprint(world.url)["policies"] == _footprint(bystander)["policies"]
    latest = world.owner("SELECT sensor_id, ts, value FROM sensor_latest_readings ORDER BY 1")
    assert latest == world.owner(
        "SELECT DISTINCT ON (sensor_id) sensor_id, ts, value FROM sensor_readings "
        "ORDER BY sensor_id, ts DESC"
    )
    assert world.owner(
        "SELECT DISTINCT relowner::regrole::text FROM pg_class "
        "WHERE relnamespace = 'partitions'::regnamespace AND relkind = 'r'"
    ) == [(access.LOADER_ROLE,)]
