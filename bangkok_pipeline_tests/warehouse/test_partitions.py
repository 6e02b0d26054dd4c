"""The building-month partition lifecycle (`warehouse/partitions.py`) on a real migrated database,
with a few hundred hand-made rows: names and bounds of the three tables, a staging table's owner
and CHECKs (also when a non-superuser loader login builds it), attach replacing a building-month
atomically, detach and drop, a building-month's debris dropped while other months' and other
buildings' tables stay, and two buildings in one month replaced and dropped apart."""

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime

import psycopg
import pytest
from psycopg import sql

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.core.settings import BANGKOK_TZ
from bangkok_pipeline.warehouse import access, partitions
from bangkok_pipeline.warehouse.partitions import DAILY, HOURLY, READINGS, TABLES

pytestmark = [pytest.mark.integration, pytest.mark.hosted]

FEB = Month(2019, 2)
MAR = Month(2019, 3)


@pytest.fixture
def conn(migrated_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(migrated_url, autocommit=True) as connection:
        yield connection


def _stage(
    conn: psycopg.Connection, month: Month, token: str, rows: int, building: int = 1
) -> None:
    """A readings staging table of the building-month holding `rows` one-minute readings of the
    building's first sensor id."""
    with conn.transaction():
        target = partitions.create_staging(conn, READINGS, month, token, building)
        conn.execute(
            sql.SQL(
                "INSERT INTO {} SELECT %s + n * interval '1 minute', %s, n "
                "FROM generate_series(0, %s) AS n"
            ).format(target),
            (READINGS.bounds(month)[0], partitions.building_bounds(building)[0] + 1, rows - 1),
        )


def _count(conn: psycopg.Connection, month: Month, building: int | None = None) -> int:
    low, high = READINGS.bounds(month)
    first, beyond = partitions.building_bounds(building) if building else (0, 2**31 - 1)
    row = conn.execute(
        "SELECT count(*) FROM sensor_readings_rows WHERE ts >= %s AND ts < %s "
        "AND sensor_id >= %s AND sensor_id < %s",
        (low, high, first, beyond),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _owner(conn: psycopg.Connection, name: str) -> str | None:
    row = conn.execute(
        "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = to_regclass(%s)",
        (f"partitions.{name}",),
    ).fetchone()
    return str(row[0]) if row else None


def test_names_and_bounds_of_the_three_tables() -> None:
    assert [t.parent for t in TABLES] == [
        "sensor_readings_rows",
        "hourly_sensor_stats",
        "daily_sensor_stats",
    ]
    assert [t.name(FEB) for t in TABLES] == [
        "sensor_readings_rows_y2019m02",
        "hourly_sensor_stats_y2019m02",
        "daily_sensor_stats_y2019m02",
    ]
    midnight = (datetime(2019, 2, 1, tzinfo=BANGKOK_TZ), datetime(2019, 3, 1, tzinfo=BANGKOK_TZ))
    assert READINGS.bounds(FEB) == midnight
    assert HOURLY.bounds(FEB) == midnight
    low, high = DAILY.bounds(Month(2018, 12))
    assert (low, high) == (date(2018, 12, 1), date(2019, 1, 1))
    assert not isinstance(low, datetime) and not isinstance(high, datetime)
    assert READINGS.staging_name(FEB, "ab12") == "sensor_readings_rows_y2019m02_b1_ab12"
    assert READINGS.leaf_name(FEB, 12) == "sensor_readings_rows_y2019m02_b12"
    assert partitions.building_bounds(1) == (0, 32768)
    assert partitions.building_bounds(3) == (65536, 98304)
    parse = partitions.parse_partition_name
    assert parse("daily_sensor_stats_y2019m02_b1_ab12") == ("daily_sensor_stats", FEB, 1, "ab12")
    assert parse("daily_sensor_stats_y2019m02_b7_b9ab") == ("daily_sensor_stats", FEB, 7, "b9ab")
    assert parse("sensor_readings_rows_y2019m02_b20") == ("sensor_readings_rows", FEB, 20, None)
    assert parse("sensor_readings_rows_y2019m02") == ("sensor_readings_rows", FEB, None, None)
    assert partitions.parse_partition_name("sensor_readings_rows_y2019m13") is None
    assert partitions.parse_partition_name("other_y2019m02") is None


def test_a_staging_table_gets_the_parents_owner_and_the_months_check(
    conn: psycopg.Connection,
) -> None:
    with pytest.raises(RuntimeError, match="inside a transaction"):
        partitions.create_staging(conn, DAILY, FEB, "t1")
    with conn.transaction():
        for table in TABLES:
            partitions.create_staging(conn, table, FEB, "t1")
    for table in TABLES:
        name = table.staging_name(FEB, "t1")
        parent_owner = conn.execute(
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = %s::regclass",
            (table.parent,),
        ).fetchone()
        assert parent_owner == (access.LOADER_ROLE,)
        assert _owner(conn, name) == access.LOADER_ROLE
        checks = conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'c' "
            "AND conname = ANY (%s) ORDER BY 1",
            (f"partitions.{name}", [f"{name}_month", f"{name}_building"]),
        ).fetchall()
        assert checks == [(f"{name}_building",), (f"{name}_month",)]
    low, high = READINGS.bounds(FEB)
    staging = READINGS.identifier(FEB, "t1")
    for outside in (READINGS.bounds(Month(2019, 1))[0], high):
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(sql.SQL("INSERT INTO {} VALUES (%s, 1, 1)").format(staging), (outside,))
    conn.execute(sql.SQL("INSERT INTO {} VALUES (%s, 1, 1)").format(staging), (low,))
    with pytest.raises(psycopg.errors.CheckViolation):  # building 2's first sensor
        conn.execute(sql.SQL("INSERT INTO {} VALUES (%s, 32769, 1)").format(staging), (low,))
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            sql.SQL("INSERT INTO {} VALUES (%s, 1, 1, 1, 1, 1, 0)").format(
                DAILY.identifier(FEB, "t1")
            ),
            (MAR,),
        )


def test_a_loader_login_builds_and_another_drops_its_debris(
    conn: psycopg.Connection, migrated_url: str
) -> None:
    """Owned by bangkok_loader from creation, so any loader login can clean up after a crash."""
    tag = uuid.uuid4().hex[:8]
    names = [f"t_part_a_{tag}", f"t_part_b_{tag}"]
    try:
        first, second = (access.create_login(conn, n, access.LOADER_ROLE) for n in names)
        with psycopg.connect(first.url(migrated_url), autocommit=True) as builder:
            _stage(builder, FEB, "crashed", 10)
        assert _owner(conn, READINGS.staging_name(FEB, "crashed")) == access.LOADER_ROLE
        with psycopg.connect(second.url(migrated_url), autocommit=True) as cleaner:
            assert partitions.drop_debris(cleaner, FEB) == [
                "sensor_readings_rows_y2019m02_b1_crashed"
            ]
    finally:
        for name in names:
            access.drop_login(conn, name)


def test_attach_replaces_a_month_atomically(conn: psycopg.Connection, migrated_url: str) -> None:
    _stage(conn, FEB, "old", 200)
    with conn.transaction():
        partitions.attach(conn, READINGS, FEB, "old")
    assert _count(conn, FEB) == 200
    assert _owner(conn, READINGS.name(FEB)) == access.LOADER_ROLE

    _stage(conn, FEB, "new", 300)
    seen: list[int] = []
    with psycopg.connect(migrated_url, autocommit=True) as reader:
        pid = reader.info.backend_pid
        with conn.transaction():
            partitions.attach(conn, READINGS, FEB, "new")
            counting = threading.Thread(target=lambda: seen.append(_count(reader, FEB)))
            counting.start()
            waited = _waits_for_a_lock(conn, pid, counting)
        counting.join(10)
    assert seen == [300 if waited else 200]  # the old month or the new one, never a mix or none
    assert _count(conn, FEB) == 300
    assert partitions.drop_debris(conn, FEB) == []  # the staging table became the partition

    _stage(conn, FEB, "failed", 50)
    with pytest.raises(ZeroDivisionError), conn.transaction():
        partitions.attach(conn, READINGS, FEB, "failed")
        1 / 0  # noqa: B018 - a failure after the attach, before commit
    assert _count(conn, FEB) == 300
    assert partitions.drop_debris(conn, FEB) == ["sensor_readings_rows_y2019m02_b1_failed"]


def _waits_for_a_lock(conn: psycopg.Connection, pid: int, reader: threading.Thread) -> bool:
    """Whether the reader ends up waiting for a lock (True) or finishes first (False)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and reader.is_alive():
        row = conn.execute(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
        if row and row[0]:
            return True
        time.sleep(0.02)
    assert not reader.is_alive()
    return False


def test_attach_without_replace_leaves_an_existing_month_alone(conn: psycopg.Connection) -> None:
    _stage(conn, FEB, "one", 20)
    with conn.transaction():
        partitions.attach(conn, READINGS, FEB, "one", replace=False)
    _stage(conn, FEB, "two", 30)
    with pytest.raises(psycopg.errors.DuplicateTable), conn.transaction():
        partitions.attach(conn, READINGS, FEB, "two", replace=False)
    assert _count(conn, FEB) == 20


def test_detach_and_drop(conn: psycopg.Connection) -> None:
    _stage(conn, FEB, "x", 100)
    with conn.transaction():
        partitions.attach(conn, READINGS, FEB, "x")
    with pytest.raises(RuntimeError, match="inside a transaction"):
        partitions.detach_and_drop(conn, READINGS, FEB)
    with conn.transaction():
        assert partitions.detach_and_drop(conn, READINGS, FEB)
    assert _owner(conn, READINGS.name(FEB)) is None, "the month's table went with its last leaf"
    assert _count(conn, FEB) == 0
    with conn.transaction():
        assert not partitions.detach_and_drop(conn, READINGS, FEB)


def test_a_months_debris_is_dropped_and_other_months_stay(conn: psycopg.Connection) -> None:
    _stage(conn, FEB, "kept", 10)
    with conn.transaction():
        partitions.attach(conn, READINGS, FEB, "kept")
        for table in TABLES:
            partitions.create_staging(conn, table, FEB, "a1")
            partitions.create_staging(conn, table, MAR, "b2")
        partitions.create_staging(conn, READINGS, FEB, "c3")
    dropped = partitions.drop_debris(conn, FEB)
    assert sorted(dropped) == sorted(
        [*(t.staging_name(FEB, "a1") for t in TABLES), READINGS.staging_name(FEB, "c3")]
    )
    assert all(_owner(conn, name) is None for name in dropped)
    assert all(_owner(conn, t.staging_name(MAR, "b2")) for t in TABLES)
    assert _count(conn, FEB) == 10
    assert partitions.drop_debris(conn, FEB) == []


def test_two_buildings_in_one_month_are_replaced_and_dropped_apart(
    conn: psycopg.Connection,
) -> None:
    """Building 2's leaf beside building 1's: replacing, cleaning up after or dropping one
    building-month leaves the other's readings, staging tables and partition alone."""
    for building, token, rows in ((1, "one", 40), (2, "two", 70)):
        _stage(conn, FEB, token, rows, building)
        with conn.transaction():
            partitions.attach(conn, READINGS, FEB, token, building=building)
    assert (_count(conn, FEB, 1), _count(conn, FEB, 2), _count(conn, FEB)) == (40, 70, 110)
    leaves = conn.execute(
        "SELECT relid::regclass::text, isleaf FROM pg_partition_tree(%s::regclass) ORDER BY 1",
        (f"partitions.{READINGS.name(FEB)}",),
    ).fetchall()
    assert leaves == [
        (f"partitions.{READINGS.name(FEB)}", False),
        (f"partitions.{READINGS.leaf_name(FEB, 1)}", True),
        (f"partitions.{READINGS.leaf_name(FEB, 2)}", True),
    ]
    assert partitions.size(conn, READINGS, FEB) > 0
    _stage(conn, FEB, "again", 15, building=1)
    _stage(conn, FEB, "inflight", 5, building=2)
    with conn.transaction():
        partitions.attach(conn, READINGS, FEB, "again", building=1)
    assert (_count(conn, FEB, 1), _count(conn, FEB, 2)) == (15, 70)
    assert partitions.drop_debris(conn, FEB, building=1) == []
    assert _owner(conn, READINGS.staging_name(FEB, "inflight", 2)), "building 2's run goes on"
    with conn.transaction():
        assert partitions.detach_and_drop(conn, READINGS, FEB, building=2)
    assert (_count(conn, FEB, 1), _count(conn, FEB, 2)) == (15, 0)
    assert partitions.drop_debris(conn, FEB, building=2) == [
        READINGS.staging_name(FEB, "inflight", 2)
    ]
    with conn.transaction():
        assert partitions.detach_and_drop(conn, READINGS, FEB, building=1)
    assert _owner(conn, READINGS.name(FEB)) is None
