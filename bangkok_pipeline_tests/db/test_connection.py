"""Connections to hosted PostgreSQL: a transaction-mode pooler refused by its port and, on any
port, by a probe against a real PgBouncer (a session-mode one passes and migrations run through
it); the pipeline's own statement and lock timeouts beating a database's tiny defaults in a real
load, and cancelling a statement with a message naming the setting; libpq parameters such as
sslmode kept by every derived URL, and TLS to a server with SSL on."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import make_url

from bangkok_pipeline.cli.main import run
from bangkok_pipeline.core.months import Month
from bangkok_pipeline.db import migrations
from bangkok_pipeline.db.connection import (
    TransactionPooler,
    connect,
    dagster_storage_url,
    lock_holder,
    resolve_url,
    with_database,
)
from bangkok_pipeline.transform.layers import run_layers
from bangkok_pipeline.warehouse.ingest import extract_raw_month, load_month, validate_month
from bangkok_pipeline_tests.conftest import new_database
from bangkok_pipeline_tests.hosted.pgbouncer import PgBouncer
from bangkok_pipeline_tests.hosted.server import SupabaseLikeServer

SUPAVISOR_TRANSACTION = (
    "postgresql://postgres.abcdefghij:s3cret@aws-0-eu-central-1.pooler.supabase.com:6543/postgres"
)
SSL_PARAMS = {"sslmode": "require", "sslrootcert": "/etc/ssl/certs/ca.pem", "keepalives": "1"}


@pytest.fixture
def pooled_database(supabase_server: SupabaseLikeServer) -> Iterator[str]:
    """A new database on the Supabase-like server: its URL as the project login."""
    with new_database(supabase_server.url()) as url:
        yield url


def _dbname(url: str) -> str:
    return str(conninfo_to_dict(url)["dbname"])


def _migrated_at_all(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return bool(_scalar(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL"))


def _scalar(conn: psycopg.Connection, statement: str) -> object:
    row = conn.execute(statement).fetchone()
    assert row is not None
    return row[0]


def test_a_url_on_port_6543_is_refused_by_its_shape_before_connecting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(TransactionPooler) as refused:
        connect(SUPAVISOR_TRANSACTION, attempts=1)  # nothing listens there: no connection tried
    message = str(refused.value)
    assert "\n" not in message and "s3cret" not in message
    assert "port 6543" in message
    assert "session pooler (aws-0-eu-central-1.pooler.supabase.com:5432)" in message
    assert (
        "direct connection (Supabase: db.abcdefghij.supabase.co:5432 as user postgres)" in message
    )

    monkeypatch.setenv("DATABASE_URL", SUPAVISOR_TRANSACTION)
    with pytest.raises(TransactionPooler):
        resolve_url()
    assert run(["db", "migrate"]) == 1
    assert capsys.readouterr().err == f"error: {message}\n"


@pytest.mark.integration
def test_a_transaction_pooler_on_another_port_is_refused_before_anything_is_written(
    transaction_pooler: PgBouncer,
    pooled_database: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = transaction_pooler.url(_dbname(pooled_database))
    with psycopg.connect(url, autocommit=True) as alone:
        # Why the probe needs a second connection: a quiet transaction pool hands a lone client
        # the server it just released, so its session state seems to survive.
        pids = {_scalar(alone, "SELECT pg_backend_pid()") for _ in range(5)}
        assert len(pids) == 1
        assert alone.info.backend_pid not in pids  # a pooler answered the handshake

    with pytest.raises(TransactionPooler, match="session did not survive"):
        connect(url, attempts=1)
    monkeypatch.setenv("DATABASE_URL", url)
    assert run(["db", "migrate"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a transaction-mode pooler" in err
    assert "Use the session pooler" in err
    assert not _migrated_at_all(pooled_database)


@pytest.mark.integration
def test_a_session_pooler_passes_and_migrations_run_through_it(
    session_pooler: PgBouncer, pooled_database: str
) -> None:
    url = session_pooler.url(_dbname(pooled_database))
    with connect(url, attempts=1, autocommit=True) as conn:
        assert migrations.migrate(conn)
        assert migrations.current_version(conn) == migrations.head()


@pytest.fixture
def hurried_database(supabase_server: SupabaseLikeServer) -> Iterator[str]:
    """A database whose defaults cancel any statement after 100 ms, any lock wait after 1 ms and
    any idle transaction after 100 ms, as a hosted server's role or database settings can."""
    with new_database(supabase_server.url()) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            for setting, value in (
                ("statement_timeout", "100ms"),
                ("lock_timeout", "1ms"),
                ("idle_in_transaction_session_timeout", "100ms"),
            ):
                conn.execute(
                    sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                        sql.Identifier(_dbname(url)), sql.Identifier(setting), sql.Literal(value)
                    )
                )
        yield url


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_the_pipelines_timeouts_beat_a_databases_tiny_defaults_in_a_real_load(
    hurried_database: str, tiny_source: Path, tmp_path: Path
) -> None:
    with (
        psycopg.connect(hurried_database) as plain,
        pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"),
    ):
        plain.execute("SELECT pg_sleep(0.3)")  # the default the pipeline has to beat

    with connect(hurried_database, autocommit=True) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("1h",)
        assert conn.execute("SHOW lock_timeout").fetchone() == ("1min",)
        migrations.migrate(conn)
        layers = run_layers(Month(2019, 2), f"hurried-{uuid.uuid4().hex[:6]}", home=tmp_path)
        extract_raw_month(conn, tiny_source, layers)
        validate_month(layers)
        assert load_month(conn, layers).rows_loaded > 0
        with lock_holder(conn, "test holder") as holder:
            assert holder.execute(
                "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), "
                "current_setting('idle_in_transaction_session_timeout')"
            ).fetchone() == ("1h", "0", "0")


@pytest.mark.integration
def test_the_statement_timeout_setting_cancels_a_statement_and_the_step_says_which(
    supabase_server: SupabaseLikeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg

    from bangkok_pipeline.defs.resources import PostgresResource

    monkeypatch.setenv("BANGKOK_STATEMENT_TIMEOUT_SECONDS", "0.2")
    with (
        pytest.raises(dg.Failure) as failed,
        PostgresResource(database_url=supabase_server.url()).connection() as conn,
    ):
        conn.execute("SELECT pg_sleep(2)")
    assert failed.value.description == (
        "database error (QueryCanceled): canceling statement due to statement timeout "
        "(BANGKOK_STATEMENT_TIMEOUT_SECONDS is 0.2: raise it if the statement needs longer)"
    )


def test_the_pipeline_refuses_a_transaction_pooler_as_a_dagster_step_failure_without_retries() -> (
    None
):
    import dagster as dg

    from bangkok_pipeline.defs.resources import PostgresResource

    with (
        pytest.raises(dg.Failure) as failed,
        PostgresResource(database_url=SUPAVISOR_TRANSACTION).connection(),
    ):
        pass
    assert "transaction-mode pooler" in (failed.value.description or "")
    assert failed.value.allow_retries is False


def test_libpq_parameters_such_as_sslmode_survive_every_derived_url() -> None:
    url = "postgresql://loader:pw@db.abcdefghij.supabase.co:5432/postgres?" + "&".join(
        f"{key}={value}" for key, value in SSL_PARAMS.items()
    )
    other = conninfo_to_dict(with_database(url, "dagster"))
    assert other["dbname"] == "dagster" and SSL_PARAMS.items() <= other.items()
    storage = make_url(dagster_storage_url(url))
    assert (storage.drivername, storage.host, storage.port) == (
        "postgresql+psycopg2",
        "db.abcdefghij.supabase.co",
        5432,
    )
    assert storage.database == "dagster" and dict(storage.query) == SSL_PARAMS


@pytest.mark.integration
def test_sslmode_require_connects_with_tls_and_the_lock_holder_keeps_it(
    tls_server: SupabaseLikeServer,
) -> None:
    url = tls_server.tcp_url(sslmode="require")
    ssl_in_use = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    with connect(url, attempts=1, autocommit=True) as conn:
        assert conn.execute(ssl_in_use).fetchone() == (True,)
        with lock_holder(conn, "test holder") as holder:
            assert holder.info.get_parameters().get("sslmode") == "require"
            assert holder.execute(ssl_in_use).fetchone() == (True,)
    with connect(with_database(url, "template1"), attempts=1) as conn:
        assert conn.execute(ssl_in_use).fetchone() == (True,)
    with psycopg.connect(tls_server.tcp_url(sslmode="disable")) as plain:
        assert plain.execute(ssl_in_use).fetchone() == (False,)
