"""Backup and restore, on the embedded PostgreSQL 18 and (marked `hosted`) on the Supabase-like
PostgreSQL 15 as its non-superuser project login: a backup restored into a fresh server of the
same kind gives identical per-partition row counts and checksums, with the roles, grants and RLS
policies intact; a restore into a database that has an auth schema of its own (Supabase's)
restores the pipeline's schemas and leaves auth as it was; a non-empty database is refused
without --force; a truncated file, a file that is not a dump, and another project's dump are
refused, and a restore that fails midway is rolled back, with nothing changed; only the newest N
timestamped backups are kept; the client tools are the server's major version's, or the command
refuses in one line naming the fix."""

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from bangkok_pipeline.cli.main import run
from bangkok_pipeline.core.settings import SettingError
from bangkok_pipeline.db.embedded import POSTGRES_BIN_PATH, EmbeddedServer
from bangkok_pipeline.ops import backup
from bangkok_pipeline.ops.backup import BackupError
from bangkok_pipeline.transform.fingerprint import database_fingerprints
from bangkok_pipeline.warehouse import access
from bangkok_pipeline_tests.conftest import load_directly, new_database
from bangkok_pipeline_tests.hosted.server import PG15_BIN, SupabaseLikeServer

pytestmark = [pytest.mark.integration, pytest.mark.hosted]


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
                "SELECT c.relname, coalesce(c.relacl, acldefault('r', c.relowner))::text, "
                "pg_get_userbyid(c.relowner) FROM pg_class AS c "
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


@contextmanager
def _fresh_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new server of the kind under test: its (Supabase: the project login's) maintenance URL."""
    if request.node.callspec.params["server"] == "supabase15":
        project = SupabaseLikeServer().start()
        try:
            yield project.url()
        finally:
            project.stop()
        return
    fresh = EmbeddedServer(tmp_path / "fresh")
    try:
        yield fresh.ensure_running()
    finally:
        fresh.stop()


def _schemas_and_privileges(url: str) -> dict[str, object]:
    """The database's schemas with owners and privileges, its own privileges, its relations."""
    with psycopg.connect(url) as conn:
        return {
            "schemas": conn.execute(
                "SELECT nspname, pg_get_userbyid(nspowner), nspacl::text, "
                "obj_description(oid, 'pg_namespace') FROM pg_namespace ORDER BY 1"
            ).fetchall(),
            "database": conn.execute(
                "SELECT datacl::text FROM pg_database WHERE datname = current_database()"
            ).fetchall(),
            "relations": conn.execute(
                "SELECT c.oid::regclass::text, c.relacl::text FROM pg_class AS c "
                "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
                "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') "
                "ORDER BY 1"
            ).fetchall(),
        }


# Schemas a hosted provider manages in every project (Supabase's here), never the pipeline's.
_MANAGED = ["auth", "storage", "vault", "realtime", "graphql_public", "extensions"]


def _managed(url: str) -> dict[str, object]:
    """The provider's schemas as their owners left them: ownership and privileges of each schema
    and relation, auth.users' and storage.buckets' rows, auth.uid(), the event triggers."""
    with psycopg.connect(url) as conn:
        present = [
            name
            for (name,) in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname = ANY (%s) ORDER BY 1", (_MANAGED,)
            ).fetchall()
        ]
        rows = {
            table: conn.execute(sql.SQL("SELECT * FROM {} ORDER BY 1").format(
                sql.Identifier(*table.split(".")))).fetchall()
            for table in ("auth.users", "storage.buckets")
            if table.split(".")[0] in present
        }  # fmt: skip
        return {
            "schemas": conn.execute(
                "SELECT nspname, pg_get_userbyid(nspowner), nspacl::text, "
                "obj_description(oid, 'pg_namespace') FROM pg_namespace "
                "WHERE nspname = ANY (%s) ORDER BY 1",
                (present,),
            ).fetchall(),
            "relations": conn.execute(
                "SELECT oid::regclass::text, pg_get_userbyid(relowner), relacl::text, "
                "relrowsecurity FROM pg_class WHERE relnamespace::regnamespace::text = ANY (%s) "
                "ORDER BY 1",
                (present,),
            ).fetchall(),
            "rows": rows,
            "uid": conn.execute(
                "SELECT pg_get_functiondef(p.oid), pg_get_userbyid(p.proowner), p.proacl::text, "
                "obj_description(p.oid, 'pg_proc') FROM pg_proc AS p "
                "WHERE p.oid = 'auth.uid()'::regprocedure"
            ).fetchall(),
            "event_triggers": conn.execute(
                "SELECT evtname, evtevent, evtfoid::regproc::text, evtenabled "
                "FROM pg_event_trigger ORDER BY 1"
            ).fetchall(),
        }


def test_backup_restores_into_a_fresh_server_with_everything_intact(
    request: pytest.FixtureRequest, loaded_url: str, dump: Path, tmp_path: Path
) -> None:
    assert backup.NAME_PATTERN.match(dump.name)
    assert backup.roles_file(dump).is_file()
    expected = _state(loaded_url)
    assert expected["partitions"] and expected["policies"], "something to compare"
    with _fresh_server(request, tmp_path) as fresh, new_database(fresh) as url:
        result = backup.restore(url, dump)
        assert set(result.created_roles) >= {"bangkok_owner", "bangkok_loader", "bangkok_api"}
        assert _state(url) == expected
        with psycopg.connect(url) as conn:  # the target's default privileges were taken back
            assert access.privilege_leaks(conn) == []


def test_a_restore_leaves_an_auth_schema_of_the_project_alone(
    server_url: str, tmp_path: Path
) -> None:
    """The source has migration 0004's auth.uid() shim (a database without auth); the target has
    an auth schema of its own, as every Supabase project has (here: from the template, with
    Supabase's storage, vault, realtime and graphql_public schemas and its event triggers; or an
    auth made like Supabase's on the embedded server)."""
    with (
        new_database(server_url, migrate=True, template="template0") as source,
        new_database(server_url) as target,
    ):
        with psycopg.connect(source) as conn:
            assert "auth" in backup.pipeline_schemas(conn), "the shim is the pipeline's"
            tables = backup.user_tables(conn)
        file = backup.backup(source, tmp_path / "shim.dump", tmp_path, keep=1).file
        with psycopg.connect(target, autocommit=True) as conn:
            if conn.execute("SELECT to_regnamespace('auth')").fetchone() == (None,):
                conn.execute(
                    "CREATE SCHEMA auth; CREATE TABLE auth.users (id uuid PRIMARY KEY, email text);"
                    "CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS "
                    "$$ SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$"
                )
            conn.execute(
                "INSERT INTO auth.users (id, email) "
                "VALUES ('00000000-0000-0000-0000-000000000001', 'someone@example.com')"
            )
            if conn.execute("SELECT to_regnamespace('storage')").fetchone() != (None,):
                conn.execute("INSERT INTO storage.buckets (id, name) VALUES ('photos', 'photos')")
            assert backup.pipeline_schemas(conn) == ["public"]
            assert backup.user_tables(conn) == 0, "Supabase's schemas are not the project's"
        before = _managed(target)
        result = backup.restore(target, file)
        assert _managed(target) == before
        assert result.tables == tables
        with psycopg.connect(target) as conn, psycopg.connect(source) as original:
            migrations = "SELECT version, checksum FROM schema_migrations ORDER BY 1"
            assert conn.execute(migrations).fetchall() == original.execute(migrations).fetchall()


def test_a_restore_that_fails_midway_changes_nothing(server_url: str, dump: Path) -> None:
    """A type named like one of the backup's tables: the restore creates schemas, functions and
    tables before it reaches that one, and all of it is rolled back."""
    with new_database(server_url) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TYPE public.zones AS (zone smallint)")
        before = _schemas_and_privileges(url)
        with pytest.raises(BackupError, match=r'^restore failed, .*"zones" already exists$'):
            backup.restore(url, dump)
        assert _schemas_and_privileges(url) == before


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
            tools = backup.client_tools(conn.info.server_version // 10000)
        subprocess.run([tools.path("pg_dump"), "-Fc", f"--file={foreign}", url], check=True)
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


def test_the_client_tools_are_the_server_versions_or_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BANGKOK_PG_BIN_DIR", raising=False)
    assert backup.client_tools(18) == backup.ClientTools(POSTGRES_BIN_PATH, 18)
    assert backup.client_tools(15) == backup.ClientTools(PG15_BIN, 15)
    with pytest.raises(BackupError) as refused:
        backup.client_tools(13)
    assert str(refused.value) == (
        "PostgreSQL 13 server: install its client tools (apt-get install postgresql-client-13) "
        "or set BANGKOK_PG_BIN_DIR to the directory of its pg_dump, pg_restore and psql"
    )
    monkeypatch.setenv("BANGKOK_PG_BIN_DIR", str(PG15_BIN))
    assert backup.client_tools(15) == backup.ClientTools(PG15_BIN, 15)
    with pytest.raises(BackupError, match="holds PostgreSQL 15 client tools; the server is Postg"):
        backup.client_tools(18)
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("BANGKOK_PG_BIN_DIR", str(empty))
    with pytest.raises(BackupError, match="lacks one of pg_dump, pg_restore, psql"):
        backup.client_tools(15)
    monkeypatch.setenv("BANGKOK_PG_BIN_DIR", str(tmp_path / "absent"))
    with pytest.raises(SettingError, match="BANGKOK_PG_BIN_DIR=.* is not a directory"):
        backup.client_tools(15)


def test_a_backup_without_matching_client_tools_is_refused_and_writes_nothing(
    loaded_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("BANGKOK_PG_BIN_DIR", str(empty))
    monkeypatch.setenv("DATABASE_URL", loaded_url)
    target = tmp_path / "out" / "refused.dump"
    assert run(["db", "backup", "--out", str(target)]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "BANGKOK_PG_BIN_DIR" in error
    assert not target.parent.exists()


def test_a_hosted_15_backup_restores_into_the_embedded_18_and_not_the_other_way(
    supabase_server: SupabaseLikeServer, tiny_source: Path, tmp_path: Path
) -> None:
    """Taking a Supabase project's data home works (pg_restore 18 reads pg_dump 15's files);
    the reverse is refused in one line before anything is touched (pg_restore 15 cannot read
    18's format)."""
    local = EmbeddedServer(tmp_path / "local")
    local_url = local.ensure_running()
    try:
        with (
            new_database(supabase_server.url(), migrate=True) as hosted,
            new_database(local_url, migrate=True) as home,
        ):
            load_directly(hosted, tiny_source, "2019-02", tmp_path / "h1")
            load_directly(home, tiny_source, "2019-03", tmp_path / "h2")
            from_15 = backup.backup(hosted, tmp_path / "from15.dump", tmp_path, keep=1).file
            from_18 = backup.backup(home, tmp_path / "from18.dump", tmp_path, keep=1).file
            with new_database(local_url) as target:
                backup.restore(target, from_15)
                restored, expected = _state(target), _state(hosted)
                assert restored["fingerprints"] == expected["fingerprints"]
                assert restored["partitions"] == expected["partitions"]
                assert restored["migrations"] == expected["migrations"]
                assert restored["policies"] == expected["policies"]
            with new_database(supabase_server.url()) as target:
                with pytest.raises(BackupError, match="written by a newer pg_dump") as refused:
                    backup.restore(target, from_18)
                assert len(str(refused.value).splitlines()) == 1
                with psycopg.connect(target) as conn:
                    assert backup.user_tables(conn) == 0
    finally:
        local.stop()
