"""Health on a real server: each concern is made true in turn (a month not loaded, a changed
source file, a fake budget, an orphaned staging table, a stuck load, a slow statement, a missing
extension, a vanished partition, migrations behind or ahead, a stopped server) and must be
flagged with the right status; `health --json` exits 2 exactly when something is critical."""

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from bangkok_pipeline.cli.main import run
from bangkok_pipeline.core.months import Month
from bangkok_pipeline.core.object_store import ObjectStore
from bangkok_pipeline.db import migrations
from bangkok_pipeline.db.connection import with_database
from bangkok_pipeline.db.embedded import EmbeddedServer
from bangkok_pipeline.ops import health
from bangkok_pipeline.ops.health import Limits, Status
from bangkok_pipeline.warehouse.month_lock import month_lock
from bangkok_pipeline_tests.conftest import load_directly, new_database

pytestmark = [pytest.mark.integration, pytest.mark.hosted]

ROOMY = Limits(budget_bytes=10 * 1024**3, slow_ms=500)


class Database:
    def __init__(self, url: str, source: Path, superuser_url: str) -> None:
        self.url = url
        self.source = source
        self.superuser_url = with_database(superuser_url, str(conninfo_to_dict(url)["dbname"]))

    def health(self, limits: Limits = ROOMY) -> dict[str, health.Finding]:
        report = health.check_health(self.url, self.source, limits)
        return {finding.concern: finding for finding in report.findings}

    def execute(
        self,
        statement: str | sql.Composed,
        params: tuple[object, ...] = (),
        superuser: bool = False,
    ) -> None:
        url = self.superuser_url if superuser else self.url
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(statement, params)


@pytest.fixture(scope="module")
def database(
    server_url: str,
    superuser_url: str,
    tiny_source: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Database]:
    """2019-02 loaded; the source (a private copy) also has 2019-03, not loaded yet."""
    source = tmp_path_factory.mktemp("health-source")
    for path in tiny_source.iterdir():
        shutil.copy2(path, source / path.name)
    home = tmp_path_factory.mktemp("health-home")
    with new_database(server_url, migrate=True) as url:
        load_directly(url, source, "2019-02", home)
        state = Database(url, source, superuser_url)
        state.home = home  # type: ignore[attr-defined]
        yield state


def test_a_month_with_source_data_but_no_load_is_flagged_then_all_is_ok(
    database: Database,
) -> None:
    found = database.health()
    assert found["loads"].status is Status.WARN
    assert "source data never loaded: 2019-03" in found["loads"].message
    assert found["partitions"].status is Status.WARN
    assert "source data but no partition yet: 2019-03" in found["partitions"].message

    load_directly(database.url, database.source, "2019-03", database.home)  # type: ignore[attr-defined]
    found = database.health()
    assert {c: f.status for c, f in found.items()} == dict.fromkeys(health.CONCERNS, Status.OK)
    assert found["database"].message.startswith("reachable, PostgreSQL ")
    assert found["migrations"].message == f"at head ({migrations.head():04d})"
    assert "2 month(s) loaded, newest 2019-03" in found["loads"].message
    assert found["loads"].details["months"]["2019-02"]["rows_loaded"] > 0


def test_a_changed_source_file_is_flagged_until_the_month_is_reloaded(
    database: Database,
) -> None:
    path = database.source / "2019Floor3.csv"
    original = path.read_bytes()
    at = original.index(b"\n2019-03-02 12:00:00,") + 21
    path.write_bytes(original[:at] + b"9" + original[at + 1 :])
    try:
        found = database.health()
        assert found["loads"].status is Status.WARN
        assert found["loads"].details["changed_since_load"] == ["2019-03"]
        assert "source changed since the last load: 2019-03" in found["loads"].message
    finally:
        path.write_bytes(original)
    assert database.health()["loads"].status is Status.OK


def test_database_size_against_a_fake_budget(database: Database) -> None:
    size = database.health()["database_size"].details["bytes"]
    nearly = database.health(Limits(budget_bytes=int(size / 0.9), slow_ms=500))["database_size"]
    assert nearly.status is Status.WARN and "nearly full" in nearly.message
    over = database.health(Limits(budget_bytes=size // 2, slow_ms=500))["database_size"]
    assert over.status is Status.CRITICAL and "over budget" in over.message


def test_connections_against_the_share_of_max_connections(database: Database) -> None:
    assert health.classify_share(0.5, 0.8, 0.95) is Status.OK
    assert health.classify_share(0.8, 0.8, 0.95) is Status.WARN
    assert health.classify_share(0.96, 0.8, 0.95) is Status.CRITICAL
    extra = [psycopg.connect(database.url) for _ in range(3)]
    try:
        found = database.health()["connections"]
        assert found.details["used"] >= 4 and found.details["max_connections"] == 100
        tight = Limits(ROOMY.budget_bytes, 500, connections_warn_share=0.03)
        assert database.health(tight)["connections"].status is Status.WARN
    finally:
        for conn in extra:
            conn.close()


def test_an_orphaned_staging_table_and_a_stuck_load_are_flagged(database: Database) -> None:
    orphan = "partitions.sensor_readings_rows_y2019m02_deadbeef"
    database.execute(
        "CREATE TABLE partitions.sensor_readings_rows_y2019m02_deadbeef (LIKE sensor_readings);"
        "INSERT INTO partitions.sensor_readings_rows_y2019m02_deadbeef "
        "VALUES ('2019-02-01 00:00+07', 1, 1.5)"
    )
    database.execute(
        "INSERT INTO load_log (building_id, month, run_id, status) "
        "VALUES (1, '2019-03-01', 'lost', 'running')"
    )
    try:
        found = database.health()["staging"]
        assert found.status is Status.WARN
        assert found.details["orphaned_tables"][0]["table"] == orphan
        assert "1 orphaned unattached table(s)" in found.message
        assert [s["month"] for s in found.details["stuck_loads"]] == ["2019-03"]
        with (
            psycopg.connect(database.url, autocommit=True) as conn,
            month_lock(conn, Month(2019, 2)),
        ):
            busy = database.health()["staging"]
            assert busy.details["tables_being_built"][0]["table"] == orphan
            assert busy.details["orphaned_tables"] == []
    finally:
        database.execute("DROP TABLE partitions.sensor_readings_rows_y2019m02_deadbeef")
        database.execute("DELETE FROM load_log WHERE run_id = 'lost'")
    assert database.health()["staging"].status is Status.OK


def test_slow_statements_and_a_missing_pg_stat_statements(database: Database) -> None:
    database.execute("SELECT pg_sleep(0.2)")
    quick = Limits(ROOMY.budget_bytes, slow_ms=100)
    found = database.health(quick)["slow_statements"]
    assert found.status is Status.WARN
    assert any("pg_sleep" in s["query"] for s in found.details["statements"])
    with psycopg.connect(database.url) as conn:
        row = conn.execute(
            "SELECT extnamespace::regnamespace::text FROM pg_extension "
            "WHERE extname = 'pg_stat_statements'"
        ).fetchone()
    assert row
    # Hosted servers install it for the project: only their superuser may drop it.
    database.execute("DROP EXTENSION pg_stat_statements", superuser=True)
    try:
        missing = database.health(quick)["slow_statements"]
        assert missing.status is Status.WARN
        assert "not installed" in missing.message
        assert "shared_preload_libraries" in missing.message and "Supabase" in missing.message
    finally:
        database.execute(
            f"CREATE EXTENSION pg_stat_statements WITH SCHEMA {row[0]}", superuser=True
        )


def test_a_loaded_month_without_its_partition_is_critical_and_gaps_are_named(
    database: Database,
) -> None:
    database.execute(
        "INSERT INTO load_log (building_id, month, run_id, status, finished_at) "
        "VALUES (1, '2019-05-01', 'vanished', 'succeeded', now())"
    )
    try:
        found = database.health()["partitions"]
        assert found.status is Status.CRITICAL
        assert "loaded but partition gone (not archived): 2019-05" in found.message
        assert found.details["gaps"] == ["2019-04", "2019-05"]
        assert "gaps in the loaded range: 2019-04" in found.message
    finally:
        database.execute("DELETE FROM load_log WHERE run_id = 'vanished'")


def test_migrations_behind_or_ahead_are_critical(database: Database) -> None:
    database.execute(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')"
    )
    try:
        ahead = database.health()["migrations"]
        assert ahead.status is Status.CRITICAL and "9999" in ahead.message
    finally:
        database.execute("DELETE FROM schema_migrations WHERE version = 9999")
    with psycopg.connect(database.url, autocommit=True) as conn:
        migrations.downgrade(conn)
        try:
            behind = database.health()["migrations"]
            assert behind.status is Status.CRITICAL
            assert "pending" in behind.message and "db migrate" in behind.message
        finally:
            migrations.migrate(conn)
    # A repeatable function changed on disk since it was applied: pending too.
    database.execute(
        "UPDATE schema_repeatables SET checksum = repeat('0', 64) WHERE name = 'api.zone_comfort'"
    )
    with psycopg.connect(database.url, autocommit=True) as conn:
        try:
            stale = database.health()["migrations"]
            assert stale.status is Status.CRITICAL
            assert "api.zone_comfort (repeatable) pending" in stale.message
        finally:
            assert migrations.migrate(conn) == ["api.zone_comfort (repeatable)"]
    assert database.health()["migrations"].status is Status.OK


def test_health_json_exits_2_only_when_something_is_critical(
    database: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database.url)
    assert run(["health", "--json", "--source", str(database.source)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["critical"] is False
    assert [f["concern"] for f in report["findings"]] == list(health.CONCERNS)
    monkeypatch.setenv("BANGKOK_DB_BUDGET", "1MB")
    assert run(["health", "--source", str(database.source)]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(health.CONCERNS)
    assert lines[3].startswith("CRITICAL database_size ")


def test_a_stopped_server_is_critical_and_the_rest_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = EmbeddedServer(tmp_path / "home")
    url = server.ensure_running()
    server.stop()
    report = health.check_health(url, None, ROOMY)
    assert [f.status for f in report.findings] == [Status.CRITICAL] + [Status.UNKNOWN] * (
        len(health.CONCERNS) - 2
    ) + [Status.OK]  # the layers are local files: nothing to reach
    assert report.findings[0].message.startswith("unreachable: cannot connect to PostgreSQL")

    monkeypatch.setenv("BANGKOK_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    target, reason = health.target_url()
    assert target is None and reason and "is not running" in reason
    stopped = health.check_health(target, None, ROOMY, not_running=reason)
    assert stopped.critical[0].message.endswith("`bangkok-pipeline db url` starts it")
    assert not server.is_running()


def test_layers_in_object_storage_are_checked_whether_or_not_the_database_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped = "postgresql://nobody@/nothing?host=/nonexistent"
    store = ObjectStore("memory://health-layers")
    store.write_text("published/2019-02/raw", "run")
    found = {
        f.concern: f
        for f in health.check_health(stopped, None, ROOMY, layers_url=store.url).findings
    }
    assert found["layers"].status is Status.OK
    assert found["layers"].message == "memory://health-layers answers; 1 month(s) published there"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    report = health.check_health(stopped, None, ROOMY, layers_url="s3://layers/bangkok")
    layers = report.findings[-1]
    assert layers.concern == "layers" and layers.status is Status.CRITICAL
    assert layers.message.startswith("object storage unreachable: cannot list s3://layers/bangkok/")
