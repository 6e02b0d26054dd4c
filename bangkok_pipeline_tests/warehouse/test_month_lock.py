"""The month lock on a real server: a tenant's API login holding every advisory key the pipeline
used to lock with (months, sensor masks, migrations) blocks no load and cannot touch the lock's
table; two loads of one month never interleave, the second waits (and says so) and then succeeds;
health sees a held lock."""

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.transform.layers import RunLayers, layer_dir, run_layers
from bangkok_pipeline.warehouse import access
from bangkok_pipeline.warehouse.ingest import extract_raw_month, load_month, validate_month
from bangkok_pipeline.warehouse.month_lock import MonthBusy, held_months, month_lock
from bangkok_pipeline_tests.conftest import load_directly, new_database

pytestmark = [pytest.mark.integration, pytest.mark.hosted]

FEB = Month(2019, 2)
# Any wait on a lock an API login could hold fails after this instead of hanging.
BOUNDED = "-c lock_timeout=15s"
# What the code before migration 0006 locked with: pg_advisory_lock(class, yyyymm) per month, the
# migrators' single key, and the sensor-mask refresh's hashtext key.
OLD_MONTH_LOCK_CLASS = 0x62616E67
OLD_MIGRATOR_KEY = 0x62616E676B6F6B
OLD_MASKS_KEY = "bangkok_pipeline.building_sensor_masks"


@dataclass
class Prepared:
    url: str
    home: Path


@pytest.fixture(scope="module")
def prepared(
    server_url: str, tiny_source: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prepared]:
    """A migrated database and a home; tests load 2019-02 of `tiny_source` into it."""
    with new_database(server_url, migrate=True) as url:
        yield Prepared(url, tmp_path_factory.mktemp("lock-home"))


@pytest.fixture
def tenant_login(prepared: Prepared) -> Iterator[access.Login]:
    """A login granted bangkok_api, as a tenant's API client gets (dropped afterwards)."""
    name = f"t_tenant_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(prepared.url, autocommit=True) as conn:
        login = access.create_login(conn, name, access.API_ROLE)
    try:
        yield login
    finally:
        with psycopg.connect(prepared.url, autocommit=True) as conn:
            access.drop_login(conn, name)


def _bounded(url: str) -> str:
    return psycopg.conninfo.make_conninfo(url, options=BOUNDED)


@pytest.mark.timeout(180)
def test_a_tenant_holding_the_old_advisory_keys_blocks_no_load(
    prepared: Prepared, tenant_login: access.Login, tiny_source: Path
) -> None:
    with psycopg.connect(tenant_login.url(prepared.url), autocommit=True) as tenant:
        for key in (201902, 201903):
            tenant.execute("SELECT pg_advisory_lock(%s, %s)", (OLD_MONTH_LOCK_CLASS, key))
        tenant.execute("SELECT pg_advisory_lock(hashtext(%s))", (OLD_MASKS_KEY,))
        tenant.execute("SELECT pg_advisory_lock(%s)", (OLD_MIGRATOR_KEY,))

        started = time.monotonic()
        rows = load_directly(_bounded(prepared.url), tiny_source, "2019-02", prepared.home)
        assert rows > 0 and time.monotonic() - started < 120

        for statement in (
            "SELECT month FROM month_locks WHERE month = '2019-02-01' FOR UPDATE",
            "SELECT month FROM month_locks",
            "INSERT INTO month_locks (month) VALUES ('2019-04-01')",
            "LOCK TABLE month_locks IN SHARE MODE",
            "LOCK TABLE private.building_sensor_masks IN SHARE UPDATE EXCLUSIVE MODE",
            "LOCK TABLE schema_migrations IN SHARE UPDATE EXCLUSIVE MODE",
        ):
            with pytest.raises(errors.InsufficientPrivilege), tenant.transaction():
                tenant.execute(statement)
    with psycopg.connect(prepared.url) as conn:
        assert conn.execute(
            "SELECT status FROM load_log WHERE month = %s ORDER BY load_id", (FEB,)
        ).fetchall()[-1] == ("succeeded",)


def _validated(prepared: Prepared, tiny_source: Path) -> None:
    """2019-02 extracted, validated and published in the home (once per module)."""
    if not layer_dir("validated", FEB, prepared.home).exists():
        layers = run_layers(FEB, "prepare", home=prepared.home)
        with psycopg.connect(prepared.url, autocommit=True) as conn:
            extract_raw_month(conn, tiny_source, layers)
        validate_month(layers)
        layers.publish()


def _from_published(prepared: Prepared, run_id: str) -> RunLayers:
    """A load of the published layer, as an asset materialized on its own reads it."""
    return run_layers(FEB, run_id, home=prepared.home, published_fallback=True)


@pytest.mark.timeout(180)
def test_two_loads_of_a_month_never_interleave_the_second_waits_and_succeeds(
    prepared: Prepared, tiny_source: Path
) -> None:
    _validated(prepared, tiny_source)
    waits: list[str] = []
    failures: list[BaseException] = []

    def load(run_id: str) -> None:
        try:
            with psycopg.connect(prepared.url, autocommit=True) as conn:
                load_month(conn, _from_published(prepared, run_id), on_wait=waits.append)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            failures.append(error)

    loads = [threading.Thread(target=load, args=(f"twin-{n}",)) for n in (1, 2)]
    for thread in loads:
        thread.start()
    for thread in loads:
        thread.join()
    assert not failures
    assert len(waits) == 1 and "waiting for the lock of 2019-02" in waits[0]
    with psycopg.connect(prepared.url) as conn:
        first, second = conn.execute(
            "SELECT status, started_at, finished_at FROM load_log "
            "WHERE run_id LIKE 'twin-%%' ORDER BY started_at"
        ).fetchall()
        assert first[0] == second[0] == "succeeded"
        assert first[2] <= second[1], "the second load started before the first one finished"
        assert conn.execute("SELECT bool_and(matches) FROM reconciliation").fetchone() == (True,)


@pytest.mark.timeout(120)
def test_a_load_waits_for_a_held_lock_and_health_sees_it(
    prepared: Prepared, tiny_source: Path
) -> None:
    _validated(prepared, tiny_source)
    waiting = threading.Event()
    failures: list[BaseException] = []

    def load() -> None:
        try:
            with psycopg.connect(prepared.url, autocommit=True) as conn:
                load_month(
                    conn, _from_published(prepared, "waiter"), on_wait=lambda _: waiting.set()
                )
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            failures.append(error)

    with psycopg.connect(prepared.url, autocommit=True) as conn:
        assert held_months(conn) == set()
        with month_lock(conn, FEB):
            assert held_months(conn) == {FEB}
            with pytest.raises(MonthBusy), month_lock(conn, FEB, wait=False):
                pass
            waiter = threading.Thread(target=load)
            waiter.start()
            assert waiting.wait(30), "the load neither waited nor said so"
            time.sleep(0.3)
            assert conn.execute(
                "SELECT count(*) FROM load_log WHERE run_id = 'waiter'"
            ).fetchone() == (0,), "the load started while another held the month"
        waiter.join(90)
        assert not waiter.is_alive() and not failures
        assert conn.execute("SELECT status FROM load_log WHERE run_id = 'waiter'").fetchone() == (
            "succeeded",
        )
        assert held_months(conn) == set()
