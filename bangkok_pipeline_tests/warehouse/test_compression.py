"""Compressed months on real servers (migration 0009, `warehouse/compression.py`, the loader).

Generated 2019-02 and 2019-03 with defects, cut to two days, are loaded once per module: February
as rows, March with `keep_as_rows=0` (written compressed by the load, never as rows). The tests
move February between the tiers and check: compress -> decompress gives back every reading
exactly (fingerprints, EXCEPT ALL, the reconciliation ledger); the view, the aggregate views and
every `api.*` function return the same rows in either tier; RLS holds on the compressed tier for
restricted logins (and Supabase's authenticator); a concurrent reader never sees the month missing
or doubled; a compressing backend killed mid-way leaves the month as it was; reloads keep the tier;
bad input is refused in one line with nothing changed. Each test leaves February as rows.
"""

import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import errors, sql
from psycopg.abc import Params

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.db import migrations
from bangkok_pipeline.db.connection import with_database
from bangkok_pipeline.devtools.generator import generate
from bangkok_pipeline.devtools.sample import keep_first_days
from bangkok_pipeline.ops import backup
from bangkok_pipeline.transform.fingerprint import Figures, database_fingerprints
from bangkok_pipeline.transform.layers import run_layers
from bangkok_pipeline.warehouse import access, archive, compression, quality
from bangkok_pipeline.warehouse.compression import CompressionError
from bangkok_pipeline.warehouse.ingest import extract_raw_month, load_month, validate_month
from bangkok_pipeline.warehouse.load import MonthLoadResult
from bangkok_pipeline.warehouse.partitions import DAYS, READINGS
from bangkok_pipeline_tests.conftest import new_database
from bangkok_pipeline_tests.hosted.server import SupabaseLikeServer

pytestmark = [pytest.mark.integration, pytest.mark.hosted]

FEB, MAR = Month(2019, 2), Month(2019, 3)
Statement = str | sql.SQL | sql.Composed


@dataclass
class Warehouse:
    """The loaded database (URL of the server's maintenance login), its source and users."""

    url: str
    source: Path
    home: Path
    building: int
    march_load: MonthLoadResult
    march_tables: list[str]
    users: dict[str, tuple[uuid.UUID, access.Login]] = field(default_factory=dict)
    api_users: dict[str, uuid.UUID] = field(default_factory=dict)

    def query(self, statement: Statement, params: Params | None = None) -> list[tuple]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def as_user(self, name: str, statement: Statement, params: Params | None = None) -> list[tuple]:
        """As app user `name`: its own restricted login (bangkok_api only) and its claim."""
        user_id, login = self.users[name]
        with (
            psycopg.connect(login.url(self.url), autocommit=True) as conn,
            access.acting_as(conn, user_id),
        ):
            return conn.execute(statement, params).fetchall()

    def tiers(self) -> dict[Month, str]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return compression.tiers(conn)

    def tables(self) -> list[str]:
        """Every table in schema partitions (attached or not; months and their leaves)."""
        return [
            name
            for (name,) in self.query(
                "SELECT relname::text FROM pg_class WHERE relnamespace = "
                "'partitions'::regnamespace AND relkind IN ('r', 'p') ORDER BY 1"
            )
        ]

    def compress(self, month: Month = FEB) -> list[compression.TierChange]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return compression.compress(conn, [month])

    def decompress(
        self, month: Month = FEB, budget: int | None = None
    ) -> list[compression.TierChange]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return compression.decompress(conn, [month], budget)

    def ledger_holds(self) -> bool:
        return self.query("SELECT bool_and(matches) FROM reconciliation")[0][0] is True

    def view_matches_ledger(self, month: Month) -> None:
        """The month's readings through the view carry exactly the validated frame's figures."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            seen = database_fingerprints(conn, _view_of(month))
        frame = {
            sensor: (int(n), float(total), int(h))
            for sensor, n, total, h in self.query(
                "SELECT sensor_id, frame_count, frame_sum, frame_hash FROM reconciliation "
                "WHERE month = %s AND frame_count > 0",
                (month.first_day,),
            )
        }
        _same_figures(seen, frame)


def _view_of(month: Month) -> sql.Composed:
    low, high = month.bounds
    return sql.SQL(
        "(SELECT ts, sensor_id, value FROM sensor_readings WHERE ts >= {} AND ts < {}) AS r"
    ).format(sql.Literal(low), sql.Literal(high))


def _same_figures(a: Figures, b: Figures) -> None:
    assert a.keys() == b.keys() and a
    for sensor, (n, total, h) in a.items():
        assert (n, h) == (b[sensor][0], b[sensor][2]), sensor
        assert abs(total - b[sensor][1]) <= 1e-9 * max(1.0, abs(total)), sensor


def _load(
    url: str, source: Path, month: Month, home: Path, keep_as_rows: int | None = None
) -> MonthLoadResult:
    layers = run_layers(month, f"test-{month}-{uuid.uuid4().hex[:6]}", home=home)
    with psycopg.connect(url, autocommit=True) as conn:
        extract_raw_month(conn, source, layers)
        validate_month(layers)
        return load_month(conn, layers, keep_as_rows=keep_as_rows)


@pytest.fixture(scope="module")
def warehouse(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    source = tmp_path_factory.mktemp("defective-source")
    generate(source, [FEB, MAR], seed=23, defects=True)
    (source / "manifest.json").unlink()
    for path in sorted(source.glob("*Floor*.csv")):
        keep_first_days(path, 2)
    home = tmp_path_factory.mktemp("compress-home")
    tag = uuid.uuid4().hex[:8]
    logins: list[str] = []
    try:
        with new_database(server_url, migrate=True) as url:
            _load(url, source, FEB, home)
            march = _load(url, source, MAR, home, keep_as_rows=0)
            state = Warehouse(url, source, home, 0, march, [])
            state.march_tables = state.tables()
            with psycopg.connect(url, autocommit=True) as conn:
                row = conn.execute("SELECT building_id FROM buildings").fetchone()
                assert row
                state.building = int(row[0])
                for name, tier in (("pro", "professional"), ("free", "free"), ("none", None)):
                    tenant = access.create_tenant(conn, f"{name} {tag}")
                    if tier:
                        access.subscribe(conn, tenant, state.building, tier)
                    login = access.create_login(conn, f"t_c{name}_{tag}", access.API_ROLE)
                    logins.append(login.name)
                    user = access.add_user(
                        conn, tenant, "viewer", f"{name}@example.org", login.name
                    )
                    state.users[name] = (user, login)
                    # Signed in through the Data API: an identity not pinned to a login.
                    state.api_users[name] = access.add_user(
                        conn, tenant, "viewer", f"api-{name}@example.org"
                    )
            yield state
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            for name in logins:
                access.drop_login(conn, name)


def _ensure(warehouse: Warehouse, tier: str, month: Month = FEB) -> None:
    """Bring the month to `tier` (tests leave February in whichever tier they end in)."""
    if warehouse.tiers()[month] != tier:
        (warehouse.compress if tier == "compressed" else warehouse.decompress)(month)
    assert warehouse.tiers()[month] == tier


def test_march_loaded_with_keep_as_rows_0_was_written_compressed_and_reconciled(
    warehouse: Warehouse,
) -> None:
    assert warehouse.march_load.compressed
    assert warehouse.tiers()[MAR] == "compressed"
    assert DAYS.name(MAR) in warehouse.march_tables
    assert not [t for t in warehouse.march_tables if t.startswith(READINGS.name(MAR))]
    assert warehouse.query(
        "SELECT count(*) FROM sensor_readings_rows WHERE ts >= %s AND ts < %s", MAR.bounds
    ) == [(0,)]
    assert warehouse.ledger_holds()
    warehouse.view_matches_ledger(MAR)
    assert (
        warehouse.march_load.rows_loaded
        == warehouse.query(sql.SQL("SELECT count(*) FROM {}").format(_view_of(MAR)))[0][0]
    )


def test_compress_then_decompress_gives_back_every_reading_exactly(warehouse: Warehouse) -> None:
    _ensure(warehouse, "rows")
    low, high = FEB.bounds
    totals = (
        "SELECT sensor_id, count(*), sum(value::float8) FROM sensor_readings "
        "WHERE ts >= %s AND ts < %s GROUP BY 1 ORDER BY 1"
    )
    with psycopg.connect(warehouse.url, autocommit=True) as conn:
        conn.execute(
            "CREATE TEMP TABLE before_compress AS SELECT ts, sensor_id, value "
            "FROM sensor_readings WHERE ts >= %s AND ts < %s",
            (low, high),
        )
        counts = conn.execute(totals, (low, high)).fetchall()
        partition = database_fingerprints(conn, READINGS.identifier(FEB))
        view = database_fingerprints(conn, _view_of(FEB))
        _same_figures(partition, view)

        def unchanged() -> None:
            for first, second in (("r", "b"), ("b", "r")):
                tables = {"r": _view_of(FEB), "b": sql.SQL("before_compress AS b")}
                differ = conn.execute(
                    sql.SQL(
                        "SELECT count(*) FROM (SELECT * FROM {} EXCEPT ALL SELECT * FROM {}) x"
                    ).format(tables[first], tables[second])
                ).fetchone()
                assert differ == (0,), f"{first} EXCEPT ALL {second}"
            now = conn.execute(totals, (low, high)).fetchall()
            assert [r[:2] for r in now] == [r[:2] for r in counts]
            for (_, _, new), (_, _, old) in zip(now, counts, strict=True):
                assert abs(new - old) <= 1e-9 * max(1.0, abs(old))
            _same_figures(database_fingerprints(conn, _view_of(FEB)), view)

        [change] = compression.compress(conn, [FEB])
        assert change.tier == "compressed" and change.readings == sum(n for _, n, _ in counts)
        assert compression.tiers(conn)[FEB] == "compressed"
        assert change.bytes_after < change.bytes_before, change.line()
        _same_figures(
            database_fingerprints(conn, compression.decompressed(DAYS.identifier(FEB))), partition
        )
        unchanged()
        [change] = compression.decompress(conn, [FEB])
        assert change.tier == "rows" and compression.tiers(conn)[FEB] == "rows"
        _same_figures(database_fingerprints(conn, READINGS.identifier(FEB)), partition)
        unchanged()
    assert warehouse.ledger_holds()
    warehouse.view_matches_ledger(FEB)
    leftovers = [t for t in warehouse.tables() if "2019m02_" in t and not t.endswith("_b1")]
    assert leftovers == [], "no staging table left behind"


def _reads(warehouse: Warehouse, user: str) -> dict[str, list[tuple]]:
    """What a subscriber reads of February through the view, the aggregate views and the API."""
    low, high = FEB.bounds
    day = (low, low + timedelta(days=1))
    building = warehouse.building
    sensor = warehouse.query(
        "SELECT min(sensor_id) FROM sensors WHERE unit = 'kW' AND NOT free_sample"
    )[0][0]
    free_sensor = warehouse.query("SELECT min(sensor_id) FROM sensors WHERE free_sample")[0][0]
    dates = (FEB.first_day, FEB.next().first_day - timedelta(days=1))
    calls: dict[str, tuple[Statement, Params]] = {
        "view, one day": (
            "SELECT ts, sensor_id, value FROM sensor_readings WHERE ts >= %s AND ts < %s",
            day,
        ),
        "view, the month": (
            "SELECT ts, sensor_id, value FROM sensor_readings WHERE ts >= %s AND ts < %s",
            (low, high),
        ),
        "hourly_aggregates": (
            "SELECT * FROM hourly_aggregates WHERE bucket >= %s AND bucket < %s ORDER BY 1, 2, 3",
            (low, high),
        ),
        "daily_aggregates": (
            "SELECT * FROM daily_aggregates WHERE day BETWEEN %s AND %s ORDER BY 1, 2, 3",
            dates,
        ),
        "daily_floor_energy": (
            "SELECT * FROM daily_floor_energy WHERE day BETWEEN %s AND %s ORDER BY 1, 2, 3",
            dates,
        ),
        "latest_readings": ("SELECT * FROM api.latest_readings(%s) ORDER BY 1, 2, 3", (building,)),
        "daily_zone_energy": (
            "SELECT * FROM api.daily_zone_energy(%s, %s, %s) ORDER BY 1, 2, 3",
            (building, *dates),
        ),
        "building_daily_totals": (
            "SELECT * FROM api.building_daily_totals(%s, %s, %s) ORDER BY 1, 2, 3",
            (building, *dates),
        ),
        "zone_comfort": (
            "SELECT * FROM api.zone_comfort(%s, %s, %s) ORDER BY 1, 2, 3",
            (building, *dates),
        ),
    }
    for bucket in ("raw", "hour", "day"):
        for name, which in (("sensor", sensor), ("free sensor", free_sensor)):
            calls[f"sensor_series {bucket}, {name}"] = (
                "SELECT * FROM api.sensor_series(%s, %s, %s, %s) ORDER BY 1, 2, 3",
                (which, low, high, bucket),
            )
        calls[f"sensor_series {bucket}, part of a day"] = (
            "SELECT * FROM api.sensor_series(%s, %s, %s, %s) ORDER BY 1, 2, 3",
            (sensor, low + timedelta(hours=5, minutes=7), low + timedelta(hours=30), bucket),
        )
    return {name: warehouse.as_user(user, *call) for name, call in calls.items()}


def _same_rows(a: list[tuple], b: list[tuple]) -> bool:
    """Same rows in the same order, floats equal within 1e-9 relative."""
    return len(a) == len(b) and all(
        len(x) == len(y)
        and all(
            math.isclose(u, v, rel_tol=1e-9) if isinstance(u, float) else u == v
            for u, v in zip(x, y, strict=True)
        )
        for x, y in zip(a, b, strict=True)
    )


def test_every_read_returns_the_same_rows_from_a_compressed_month(warehouse: Warehouse) -> None:
    _ensure(warehouse, "rows")
    before = _reads(warehouse, "pro")
    assert all(before.values()), [name for name, rows in before.items() if not rows]
    warehouse.compress()
    after = _reads(warehouse, "pro")
    for name, rows in before.items():
        if name.startswith("view") or " raw" in name:  # the readings themselves: exactly
            assert Counter(after[name]) == Counter(rows), name
        else:  # float sums and averages may differ in the last bits with the plan's row order
            assert _same_rows(after[name], rows), name


_FEB_READINGS = (
    "SELECT count(*), count(DISTINCT sensor_id) FROM sensor_readings WHERE ts >= %s AND ts < %s"
)


def _february_as_owner(warehouse: Warehouse) -> tuple[list[tuple], list[tuple]]:
    """February's (readings, sensors) through the view as the owner: all, and the free sample."""
    low, high = FEB.bounds
    everything = warehouse.query(_FEB_READINGS, (low, high))
    sample = warehouse.query(
        "SELECT count(*), count(DISTINCT r.sensor_id) FROM sensor_readings AS r "
        "JOIN sensors USING (sensor_id) WHERE free_sample AND ts >= %s AND ts < %s",
        (low, high),
    )
    return everything, sample


def test_rls_on_the_compressed_tier_as_restricted_logins(warehouse: Warehouse) -> None:
    low, high = FEB.bounds
    month = _FEB_READINGS
    sensor, free_sensor = warehouse.query(
        "SELECT min(sensor_id) FILTER (WHERE NOT free_sample), "
        "min(sensor_id) FILTER (WHERE free_sample) FROM sensors"
    )[0]
    series = "SELECT count(*) FROM api.sensor_series(%s, %s, %s, 'raw')"
    _ensure(warehouse, "compressed")
    everything, sample = _february_as_owner(warehouse)
    assert everything[0][0] > sample[0][0] > 0 and sample[0][1] == 24
    assert warehouse.as_user("pro", month, (low, high)) == everything
    assert warehouse.as_user("free", month, (low, high)) == sample
    assert warehouse.as_user("none", month, (low, high)) == [(0, 0)]
    for which in (sensor, free_sensor):
        owner = warehouse.query(
            "SELECT count(*) FROM sensor_readings WHERE sensor_id = %s AND ts >= %s AND ts < %s",
            (which, low, high),
        )
        assert owner[0][0] > 0
        assert warehouse.as_user("pro", series, (which, low, high)) == owner
        free_sees = owner if which == free_sensor else [(0,)]
        assert warehouse.as_user("free", series, (which, low, high)) == free_sees
        assert warehouse.as_user("none", series, (which, low, high)) == [(0,)]
    for name in ("pro", "free", "none"):
        with pytest.raises(errors.InsufficientPrivilege):
            warehouse.as_user(name, sql.SQL("SELECT count(*) FROM {}").format(DAYS.identifier(FEB)))


@pytest.mark.parametrize("server", ["supabase15"], indirect=True, scope="session")
def test_supabase_data_api_roles_on_the_compressed_tier(
    warehouse: Warehouse, supabase_server: SupabaseLikeServer
) -> None:
    """authenticator and authenticated exist on the Supabase-like server only."""
    supabase = supabase_server
    dbname = str(psycopg.conninfo.conninfo_to_dict(warehouse.url)["dbname"])
    authenticator = with_database(supabase.url(user="authenticator"), dbname)
    low, high = FEB.bounds
    month = _FEB_READINGS
    _ensure(warehouse, "compressed")
    everything, sample = _february_as_owner(warehouse)
    for user, expected in (("pro", everything), ("free", sample), ("none", [(0, 0)])):
        with psycopg.connect(authenticator, autocommit=True) as conn:
            conn.execute("SET ROLE authenticated")
            conn.execute(
                "SELECT set_config('request.jwt.claims', %s, false)",
                (access.claims(warehouse.api_users[user]),),
            )
            assert conn.execute(month, (low, high)).fetchall() == expected, user
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(sql.SQL("SELECT count(*) FROM {}").format(DAYS.identifier(FEB)))
    with psycopg.connect(authenticator, autocommit=True) as conn:
        conn.execute("SET ROLE anon")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(month, (low, high))


def test_a_reader_never_sees_the_month_missing_or_doubled_during_compress(
    warehouse: Warehouse,
) -> None:
    _ensure(warehouse, "compressed")
    low, high = FEB.bounds
    [(expected,)] = warehouse.query(
        "SELECT count(*) FROM sensor_readings WHERE ts >= %s AND ts < %s", (low, high)
    )
    counts: list[int] = []
    stop = threading.Event()

    failures: list[BaseException] = []

    def read() -> None:
        try:
            with psycopg.connect(warehouse.url, autocommit=True) as conn:
                while not stop.is_set():
                    row = conn.execute(
                        "SELECT count(*) FROM sensor_readings WHERE ts >= %s AND ts < %s",
                        (low, high),
                    ).fetchone()
                    counts.append(row[0] if row else -1)
        except psycopg.Error as error:  # e.g. a deadlock with the swap: the reader was killed
            failures.append(error)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        import time

        t0 = time.time()
        warehouse.decompress()
        t1 = time.time()
        warehouse.compress()
        print("TIMES", t1 - t0, time.time() - t1, len(counts))
    finally:
        stop.set()
        reader.join()
    assert len(counts) > 3
    assert set(counts) == {expected}


_ACTIVITY = "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND "
_PHASES = {  # the compressing backend: filling the compressed table, or its swap waiting
    "fill": sql.SQL(_ACTIVITY + "state = 'active' AND query LIKE '%%minute_slots%%'"),
    "swap": sql.SQL(_ACTIVITY + "wait_event_type = 'Lock' AND query LIKE '%%DETACH PARTITION%%'"),
}


@pytest.mark.parametrize("phase", sorted(_PHASES))
def test_a_compress_killed_mid_way_leaves_the_month_as_it_was(
    warehouse: Warehouse, phase: str
) -> None:
    """Its backend is terminated while it fills the compressed table, or once filled while its
    swap waits for a reader's lock: the month stays rows, exactly, with no debris."""
    _ensure(warehouse, "rows")
    low, high = FEB.bounds
    with psycopg.connect(warehouse.url, autocommit=True) as conn:
        before = database_fingerprints(conn, _view_of(FEB))
    tables = warehouse.tables()
    app = f"killed-compress-{uuid.uuid4().hex[:6]}"
    failure: list[BaseException] = []

    def run() -> None:
        with psycopg.connect(warehouse.url, autocommit=True, application_name=app) as conn:
            try:
                compression.compress(conn, [FEB])
            except BaseException as error:  # noqa: BLE001 - handed to the test
                failure.append(error)

    blocker = psycopg.connect(warehouse.url)
    if phase == "swap":  # a reader's open transaction holds the partition; DETACH waits on it
        blocker.execute(sql.SQL("SELECT count(*) FROM {}").format(READINGS.identifier(FEB)))
    worker = threading.Thread(target=run)
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = warehouse.query(_PHASES[phase], (app,))
            if found:
                killed = warehouse.query("SELECT pg_terminate_backend(%s)", (found[0][0],))
                assert killed == [(True,)]
                break
            assert worker.is_alive(), f"the compress finished before its {phase} was seen"
            time.sleep(0.005)
        else:
            pytest.fail(f"the compress never reached its {phase}")
    finally:
        worker.join(timeout=60)
        blocker.close()
    assert failure and isinstance(failure[0], psycopg.OperationalError), failure
    assert warehouse.tiers()[FEB] == "rows"
    assert warehouse.tables() == tables, "no staging table survives the killed transaction"
    with psycopg.connect(warehouse.url, autocommit=True) as conn:
        _same_figures(database_fingerprints(conn, _view_of(FEB)), before)
        assert compression.tiers(conn)[FEB] == "rows"
    _ensure(warehouse, "compressed")
    with psycopg.connect(warehouse.url, autocommit=True) as conn:
        _same_figures(database_fingerprints(conn, _view_of(FEB)), before)
    assert warehouse.query(
        "SELECT count(*) FROM sensor_readings WHERE ts >= %s AND ts < %s", (low, high)
    ) == [(sum(n for n, _, _ in before.values()),)]


def test_a_reload_keeps_the_month_compressed(warehouse: Warehouse) -> None:
    with psycopg.connect(warehouse.url, autocommit=True) as conn:
        before = database_fingerprints(conn, _view_of(FEB))
    _ensure(warehouse, "compressed")
    result = _load(warehouse.url, warehouse.source, FEB, warehouse.home)
    assert result.compressed
    assert warehouse.tiers()[FEB] == "compressed"
    assert READINGS.name(FEB) not in warehouse.tables()
    assert warehouse.ledger_holds()
    warehouse.view_matches_ledger(FEB)
    with psycopg.connect(warehouse.url, autocommit=True) as conn:
        _same_figures(database_fingerprints(conn, _view_of(FEB)), before)


def test_compress_refuses_bad_months_in_one_line_and_changes_nothing(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    tiers, tables = warehouse.tiers(), warehouse.tables()
    cases = {
        "2019-01 is not loaded": [Month(2019, 1)],
        "2019-05 is not loaded": [FEB, Month(2019, 5)],  # a range with a gap
    }
    for message, months in cases.items():
        with (
            psycopg.connect(warehouse.url, autocommit=True) as conn,
            pytest.raises(CompressionError) as caught,
        ):
            compression.compress(conn, months)
        assert message in str(caught.value) and "nothing was changed" in str(caught.value)
        assert "\n" not in str(caught.value)
        assert warehouse.tiers() == tiers and warehouse.tables() == tables

    with (
        psycopg.connect(warehouse.url, autocommit=True) as conn,
        pytest.raises(CompressionError, match="cannot decompress: 2019-04 is not loaded"),
    ):
        compression.decompress(conn, [MAR, Month(2019, 4)])
    assert warehouse.tiers() == tiers

    with (
        psycopg.connect(warehouse.url, autocommit=True) as conn,
        pytest.raises(CompressionError) as caught,
    ):
        compression.decompress(conn, [MAR], budget_bytes=1024)
    message = str(caught.value)
    [(readings,)] = warehouse.query(sql.SQL("SELECT count(*) FROM {}").format(_view_of(MAR)))
    assert f"{readings:,} readings as rows" in message and "needs about" in message
    assert "nothing was changed" in message and "\n" not in message
    assert warehouse.tiers() == tiers and warehouse.tables() == tables


def test_compress_refuses_an_archived_month(warehouse: Warehouse, tmp_path: Path) -> None:
    _ensure(warehouse, "rows")  # archive takes a month of rows
    with psycopg.connect(warehouse.url, autocommit=True) as conn:
        archive.archive_month(conn, FEB, tmp_path)
        try:
            tiers, tables = compression.tiers(conn), warehouse.tables()
            assert tiers == {MAR: "compressed"}
            with pytest.raises(CompressionError) as caught:
                compression.compress(conn, [FEB, MAR])
            assert compression.tiers(conn) == tiers and warehouse.tables() == tables
        finally:
            archive.restore_month(conn, FEB, tmp_path)
    assert str(caught.value) == (
        "cannot compress: 2019-02 is archived (restore it first: bangkok-pipeline archive "
        "restore --month 2019-02); nothing was changed"
    )
    assert warehouse.tiers() == {FEB: "rows", MAR: "compressed"}
    warehouse.view_matches_ledger(FEB)


def test_a_compressed_month_archives_and_restores_as_rows_exactly(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    _ensure(warehouse, "compressed")
    hourly = (
        "SELECT * FROM hourly_aggregates WHERE bucket >= %s AND bucket < %s ORDER BY 1, 2",
        FEB.bounds,
    )
    before = warehouse.query(*hourly)
    with psycopg.connect(warehouse.url, autocommit=True) as conn:
        plan = archive.plan_retention(conn, 1, None)  # compressed months count for retention
        assert plan.archive == [FEB]
        archived = archive.archive_month(conn, FEB, tmp_path)
        assert FEB not in compression.tiers(conn)
        assert not [t for t in warehouse.tables() if t.startswith(DAYS.name(FEB))]
        restored = archive.restore_month(conn, FEB, tmp_path)
    assert (
        archived.rows
        == restored.rows
        == warehouse.query(
            "SELECT sum(frame_count) FROM reconciliation WHERE month = %s", (FEB.first_day,)
        )[0][0]
    )
    assert restored.aggregates_rebuilt  # a compressed month had no hourly partition
    assert warehouse.tiers()[FEB] == "rows"
    warehouse.view_matches_ledger(FEB)
    assert _same_rows(warehouse.query(*hourly), before)


def test_the_fast_path_unnests_only_the_days_asked_for(warehouse: Warehouse) -> None:
    """`sensor_readings_between(from, to)` returns what the view does for the period, as the
    caller (RLS), and its plan reads only the compressed days of that period: the other
    compressed month's partition is pruned."""
    _ensure(warehouse, "compressed")
    low = FEB.bounds[0]
    day = (low + timedelta(hours=6), low + timedelta(days=1, hours=6))
    through_view = warehouse.query(
        "SELECT ts, sensor_id, value FROM sensor_readings WHERE ts >= %s AND ts < %s "
        "ORDER BY sensor_id, ts",
        day,
    )
    fast = warehouse.query(
        "SELECT ts, sensor_id, value FROM sensor_readings_between(%s, %s) ORDER BY sensor_id, ts",
        day,
    )
    assert fast == through_view and fast
    free = warehouse.as_user(
        "free", "SELECT count(DISTINCT sensor_id) FROM sensor_readings_between(%s, %s)", day
    )
    assert free == [(24,)]
    plan = "\n".join(
        line
        for (line,) in warehouse.query(
            "EXPLAIN SELECT * FROM sensor_readings_between(%s, %s) WHERE sensor_id = 3", day
        )
    )
    assert DAYS.name(FEB) in plan and DAYS.name(MAR) not in plan, plan


def test_the_downgrade_of_0009_is_refused_while_a_month_is_compressed(
    warehouse: Warehouse,
) -> None:
    _ensure(warehouse, "compressed")
    before = warehouse.tiers()
    with psycopg.connect(warehouse.url, autocommit=True) as conn:
        migrations.downgrade(conn, 9)  # 0010 goes down with the months as they are
        with pytest.raises(migrations.MigrationError, match="compressed months exist"):
            migrations.downgrade(conn, 8)
        assert migrations.current_version(conn) == 9
        migrations.migrate(conn)
    assert warehouse.tiers() == before


def test_the_asset_checks_queries_hold_on_a_compressed_month(warehouse: Warehouse) -> None:
    """What the reconciliation and aggregates checks run after a load, on a compressed month."""
    _ensure(warehouse, "compressed")
    with psycopg.connect(warehouse.url, autocommit=True) as conn:
        for month in (FEB, MAR):
            assert quality.partition_exists(conn, month)
            assert quality.reconcile_live(conn, month, "check-run") == []
            assert quality.aggregate_mismatches(conn, month, sample_size=50) == []
    assert warehouse.ledger_holds()


def test_a_backup_with_compressed_months_restores_them_compressed_and_exact(
    warehouse: Warehouse, server_url: str, tmp_path: Path
) -> None:
    _ensure(warehouse, "compressed")
    with psycopg.connect(warehouse.url) as conn:
        expected = database_fingerprints(conn, sql.Identifier("sensor_readings"))
    dump = backup.backup(warehouse.url, tmp_path / "tiers.dump", tmp_path, keep=1).file
    with new_database(server_url) as target:
        backup.restore(target, dump)
        with psycopg.connect(target, autocommit=True) as conn:
            assert compression.tiers(conn) == warehouse.tiers()
            assert database_fingerprints(conn, sql.Identifier("sensor_readings")) == expected
            assert access.privilege_leaks(conn) == []
