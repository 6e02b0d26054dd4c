"""Backup and restore with the embedded server's pg_dump/pg_restore: a backup restored into a
fresh server gives identical per-partition row counts and checksums, with the roles, grants and
RLS policies intact; a non-empty database is refused without --force; a truncated file, a file
that is not a dump, and another project's dump are refused with nothing changed; only the newest
N timestamped backups are kept."""

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from bangkok_pipeline.cli.main import run
from bangkok_pipeline.db.embedded import POSTGRES_BIN_PATH, EmbeddedServer
from bangkok_pipeline.ops import backup
from bangkok_pipeline.ops.backup import BackupError
from bangkok_pipeline.transform.fingerprint import database_fingerprints
from bangkok_pipeline_tests.conftest import load_directly, new_database

pytestmark = pytest.mark.integration


def _partition_figures(conn: psycopg.Connection) -> dict[str, object]:
    """Per table in schema partitions: its row count, and for readings its per-sensor
    count/sum/hash fingerprints (fingerprint.py)."""
    names = conn.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'partitions'::regnamespace "
        "AND relkind = 'r' ORDER BY 1"
    ).fetchall()
    figures: dict[str, object] = {}
    for (name,) in names:
        table = sql.Identifier("partitions", name)
        figures[name] = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
        if name.startswith("sensor_readings_"):
            figures[f"{name} fingerprints"] = database_fingerprints(conn, table)
    return figures


def _state(url: str) -> dict[str, object]:
    """What must survive a backup and restore: per-partition row counts, per-sensor readings
    fingerprints, policies, grants, ownership, migrations, roles and their memberships."""
    with psycopg.connect(url) as conn:
        fingerprints = conn.execute(
            "SELECT sensor_id, count(*), sum(value::float8), sum(((extract(epoch FROM ts)::bigint"
            " / 60) % 1048576) * 1000003 + ('x' || encode(float4send(value), 'hex'))::bit(32)"
            "::int) FROM sensor_readings GROUP BY 1 ORDER BY 1"
        ).fetchall()
        return {
            "partitions": _partition_figures(conn),
            "fingerprints": fingerprints,
            "policies": conn.execute(
                "SELECT tablename, policyname, roles::text, cmd, qual, with_check "
                "FROM pg_policies ORDER BY 1, 2"
            ).fetchall(),
            "rls": conn.execute(
                "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                "WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') "
                "ORDER BY 1"
            ).fetchall(),
            "grants": conn.execute(
                "SELECT c.relname, c.relacl::text, pg_get_userbyid(c.relowner) FROM pg_class AS c "
                "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
                "WHERE n.nspname IN ('public', 'partitions', 'api') ORDER BY 1"
            ).fetchall(),
            "migrations": conn.execute(
                "SELECT version, checksum FROM schema_migrations ORDER BY 1"
            ).fetchall(),
            "roles": conn.execute(
                "SELECT r.rolname, r.rolcanlogin, r.rolbypassrls, array(SELECT g.rolname::text "
                "FROM pg_auth_members AS m JOIN pg_roles AS g ON g.oid = m.roleid "
                "WHERE m.member = r.oid AND g.rolname LIKE 'bangkok%' ORDER BY 1) "
                "FROM pg_roles AS r WHERE r.rolname LIKE 'bangkok%' ORDER BY 1"
            ).fetchall(),
        }


@pytest.fixture(scope="module")
def loaded_url(
    server_url: str, tiny_source: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    home = tmp_path_factory.mktemp("backup-home")
    with new_database(server_url, migrate=True) as url:
        load_directly(url, tiny_source, "2019-02", home)
        yield url


@pytest.fixture(scope="module")
def dump(loaded_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("backups")
    return backup.backup(loaded_url, None, directory, keep=3).file


def test_backup_restores_into_a_fresh_server_with_everything_intact(
    loaded_url: str, dump: Path, tmp_path: Path
) -> None:
    assert backup.NAME_PATTERN.match(dump.name)
    assert backup.roles_file(dump).is_file()
    expected = _state(loaded_url)
    assert expected["partitions"] and expected["policies"], "something to compare"
    fresh = EmbeddedServer(tmp_path / "fresh")
    url = fresh.ensure_running()
    try:
        result = backup.restore(url, dump)
        assert set(result.created_roles) >= {"bangkok_owner", "bangkok_loader", "bangkok_api"}
        assert _state(url) == expected
    finally:
        fresh.stop()


def test_a_non_empty_database_is_refused_unless_forced(
    server_url: str, loaded_url: str, dump: Path
) -> None:
    before = _state(loaded_url)
    with pytest.raises(BackupError, match="is not empty .* pass --force"):
        backup.restore(loaded_url, dump)
    assert _state(loaded_url) == before
    with new_database(server_url) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE scratch (note text)")
        with pytest.raises(BackupError, match=r"\(1 tables, views or sequences\)"):
            backup.restore(url, dump)
        backup.restore(url, dump, force=True)
        restored = _state(url)
        assert restored["fingerprints"] == before["fingerprints"]
        assert restored["partitions"] == before["partitions"]
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM scratch").fetchone() == (0,)


def test_bad_backup_files_are_refused_and_the_database_stays_empty(
    server_url: str, dump: Path, tmp_path: Path
) -> None:
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])
    text = tmp_path / "notes.dump"
    text.write_text("hello")
    with new_database(server_url) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE other_project (id int)")
        foreign = tmp_path / "foreign.dump"
        with psycopg.connect(url) as conn:
            conninfo = conn.info.dsn
        import subprocess

        subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_dump"), "-Fc", f"--file={foreign}", conninfo], check=True
        )
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TABLE other_project"))
        cases = [
            (truncated, "is truncated or damaged"),
            (text, "is not a pg_dump custom-format archive"),
            (foreign, "is not a bangkok_pipeline backup: it has no table schema_migrations"),
            (tmp_path / "missing.dump", "does not exist"),
        ]
        for file, message in cases:
            with pytest.raises(BackupError, match=message):
                backup.restore(url, file)
            with psycopg.connect(url) as conn:
                assert backup.user_tables(conn) == 0


def test_only_the_newest_backups_are_kept(loaded_url: str, tmp_path: Path) -> None:
    older = [tmp_path / f"bangkok-2020010{day}T000000Z.dump" for day in range(1, 5)]
    for path in older:
        path.write_bytes(b"PGDMP old")
        backup.roles_file(path).write_text("[]")
    unrelated = tmp_path / "keep-me.dump"
    unrelated.write_bytes(b"PGDMP mine")
    result = backup.backup(loaded_url, None, tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [
            older[-1].name,
            backup.roles_file(older[-1]).name,
            result.file.name,
            backup.roles_file(result.file).name,
            unrelated.name,
        ]
    )
    assert result.pruned == older[:3]


def test_db_backup_and_restore_commands(
    server_url: str,
    loaded_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", loaded_url)
    target = tmp_path / "cli.dump"
    assert run(["db", "backup", "--out", str(target)]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {target} (")
    assert run(["db", "restore", str(target)]) == 1
    assert "is not empty" in capsys.readouterr().err
    with new_database(server_url) as url:
        monkeypatch.setenv("DATABASE_URL", url)
        assert run(["db", "restore", str(target)]) == 0
        assert capsys.readouterr().out.startswith("restored cli.dump into ")
        assert _state(url)["partitions"] == _state(loaded_url)["partitions"]
