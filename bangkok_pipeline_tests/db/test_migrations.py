"""Versioned migrations: up, down to base, up again with data, races, edits and bad targets."""

import shutil
import threading
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from bangkok_pipeline.core.settings import sql_dir
from bangkok_pipeline.db import migrations
from bangkok_pipeline.warehouse import access

pytestmark = pytest.mark.integration


def _tables(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
        "AND tablename <> 'schema_migrations'"
    ).fetchall()
    return {name for (name,) in rows}


def test_migrate_downgrade_to_base_and_migrate_again(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        applied = migrations.migrate(conn)
        assert applied == [m.label for m in migrations.available()]
        assert migrations.current_version(conn) == migrations.head()
        assert {"sensors", "sensor_readings", "quarantine", "load_log"} <= _tables(conn)
        conn.execute("INSERT INTO floors VALUES (1, 1)")
        assert migrations.migrate(conn) == []

        reverted = migrations.downgrade(conn, 0)
        assert reverted == [m.label for m in reversed(migrations.available())]
        assert migrations.current_version(conn) == 0
        assert _tables(conn) == set()

        migrations.migrate(conn)
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
        with pytest.raises(psycopg.errors.UndefinedFunction):
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


def test_two_migrators_at_once_apply_each_step_once(database_url: str) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with psycopg.connect(database_url, autocommit=True) as conn:
                results.append(migrations.migrate(conn))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(len(r) for r in results) == [0, len(migrations.available())]


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
                assert migrations.migrate(conn) == [m.label for m in migrations.available()]
                assert migrations.downgrade(conn) == [migrations.available()[-1].label]
                assert migrations.migrate(conn) == [migrations.available()[-1].label]
                with pytest.raises(psycopg.errors.InsufficientPrivilege), api.transaction():
                    api.execute("LOCK TABLE schema_migrations IN SHARE UPDATE EXCLUSIVE MODE")
        finally:
            access.drop_login(conn, name)
