"""Shared fixtures: real PostgreSQL servers per test session and fresh databases on them.

The server is the embedded one in a temporary BANGKOK_HOME, or the server of DATABASE_URL when
that is set; either way each test (or test module) gets its own database, dropped afterwards.
Modules marked `hosted` run twice: also on a Supabase-like PostgreSQL 15 (`hosted/server.py`),
as its project login `postgres`, which is not a superuser.
Option `--readme-screenshots DIR`: where test_ui.py copies the README's pictures of the UI.
"""

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from bangkok_pipeline.db import migrations
from bangkok_pipeline.db.connection import with_database
from bangkok_pipeline.db.embedded import EmbeddedServer
from bangkok_pipeline.defs.ingestion.partitions import add_building_partitions, partition_key
from bangkok_pipeline.source.layout import BUILDING
from bangkok_pipeline_tests.hosted.pgbouncer import PgBouncer
from bangkok_pipeline_tests.hosted.server import SUPERUSER as SUPABASE_SUPERUSER
from bangkok_pipeline_tests.hosted.server import SupabaseLikeServer

SERVERS = ("embedded", "supabase15")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--readme-screenshots",
        metavar="DIR",
        default=None,
        help="copy the README's UI pictures that test_ui.py takes to DIR, once it passed "
        "(docs/images); without it nothing is written outside the test's tmp_path",
    )


@pytest.fixture
def readme_screenshots(request: pytest.FixtureRequest) -> Path | None:
    """Where `--readme-screenshots` asks the README's pictures to go, if it does."""
    value = request.config.getoption("--readme-screenshots")
    return Path(value).resolve() if value else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The server of a test marked `hosted`: each of SERVERS in turn (unless the test names its
    own, e.g. `@pytest.mark.parametrize("server", ["supabase15"], indirect=True, scope="session")`
    for what exists on the Supabase-like server only)."""
    explicit = any(
        marker.args and marker.args[0] == "server"
        for marker in metafunc.definition.iter_markers("parametrize")
    )
    hosted = metafunc.definition.get_closest_marker("hosted")
    if "server" in metafunc.fixturenames and hosted and not explicit:
        metafunc.parametrize("server", SERVERS, indirect=True, scope="session")


@dataclass(frozen=True)
class Server:
    """A test server: the URL the pipeline uses and its superuser's (the same on the embedded
    server; on the Supabase-like one `supabase_admin`, which owns what a project's login cannot
    change, such as the preinstalled extensions)."""

    url: str
    superuser_url: str


@pytest.fixture(scope="session")
def supabase_server() -> Iterator[SupabaseLikeServer]:
    """The session's Supabase-like PostgreSQL 15, started on first use."""
    server = SupabaseLikeServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def transaction_pooler(supabase_server: SupabaseLikeServer) -> Iterator[PgBouncer]:
    """A PgBouncer in transaction mode before the Supabase-like server (as Supavisor on 6543)."""
    pooler = PgBouncer(supabase_server.url(), "transaction").start()
    yield pooler
    pooler.stop()


@pytest.fixture(scope="session")
def session_pooler(supabase_server: SupabaseLikeServer) -> Iterator[PgBouncer]:
    """A PgBouncer in session mode before the Supabase-like server (Supavisor on 5432 is one)."""
    pooler = PgBouncer(supabase_server.url(), "session").start()
    yield pooler
    pooler.stop()


@pytest.fixture(scope="session")
def tls_server() -> Iterator[SupabaseLikeServer]:
    """A second Supabase-like PostgreSQL 15, also on 127.0.0.1 with SSL on."""
    server = SupabaseLikeServer(tls=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The session's server: the embedded one (or DATABASE_URL's), or the Supabase-like 15."""
    if getattr(request, "param", "embedded") == "supabase15":
        supabase: SupabaseLikeServer = request.getfixturevalue("supabase_server")
        yield Server(supabase.url(), supabase.url(user=SUPABASE_SUPERUSER))
        return
    external = os.environ.get("DATABASE_URL")
    if external:
        yield Server(external, external)
        return
    embedded = EmbeddedServer(tmp_path_factory.mktemp("bangkok") / "home")
    url = embedded.ensure_running()
    yield Server(url, url)
    embedded.stop()


@pytest.fixture(scope="session")
def server_url(server: Server) -> str:
    """Maintenance URL of the session's server: on the Supabase-like one, its project login's."""
    return server.url


@pytest.fixture(scope="session")
def superuser_url(server: Server) -> str:
    return server.superuser_url


def building_instance(*names: str) -> dg.DagsterInstance:
    """An ephemeral Dagster instance whose building dimension holds `names` (CU-BEMS's if none),
    as `buildings add`, a load or the source sensor would have made it."""
    instance = dg.DagsterInstance.ephemeral()
    add_building_partitions(instance, list(names or (BUILDING,)))
    return instance


def cubems(month: str) -> dg.MultiPartitionKey:
    """The partition of CU-BEMS's `month`."""
    return partition_key(BUILDING, month)


@contextmanager
def new_database(
    server_url: str, migrate: bool = False, template: str = "template1"
) -> Iterator[str]:
    """A new, empty (or migrated) database on the server, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    url = with_database(server_url, name)
    try:
        if migrate:
            with psycopg.connect(url, autocommit=True) as conn:
                migrations.migrate(conn)
        yield url
    finally:
        _drop_database(server_url, name)


def _drop_database(server_url: str, name: str) -> None:
    """DROP DATABASE ... WITH (FORCE). A login that is not a superuser (the Supabase-like
    server's) cannot end an autovacuum worker busy in the database: wait for it, up to 30 s."""
    statement = sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
    for attempt in range(60):
        try:
            with psycopg.connect(server_url, autocommit=True) as conn:
                conn.execute(statement)
            return
        except psycopg.errors.InsufficientPrivilege:
            if attempt == 59:
                raise
            time.sleep(0.5)


@pytest.fixture
def database_url(server_url: str) -> Iterator[str]:
    with new_database(server_url) as url:
        yield url


@pytest.fixture
def migrated_url(server_url: str) -> Iterator[str]:
    with new_database(server_url, migrate=True) as url:
        yield url


@pytest.fixture
def bangkok_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private BANGKOK_HOME for the test."""
    home = tmp_path / "home"
    monkeypatch.setenv("BANGKOK_HOME", str(home))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return home


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated 2019-02 and 2019-03 of all seven floors, cut to each month's first two days
    (~0.6 M readings a month): months small enough for the operations tests to load quickly."""
    from bangkok_pipeline.core.months import Month
    from bangkok_pipeline.devtools.generator import generate
    from bangkok_pipeline.devtools.sample import keep_first_days

    out = tmp_path_factory.mktemp("tiny-source")
    generate(out, [Month(2019, 2), Month(2019, 3)], seed=11)
    (out / "manifest.json").unlink()
    for path in sorted(out.glob("*Floor*.csv")):
        keep_first_days(path, 2)
    return out


@pytest.fixture(scope="session")
def tower_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second building's 2019-02, its first two days: generated with another seed and the real
    files' defects (a column added mid-year among them, so 205 sensors)."""
    from bangkok_pipeline.core.months import Month
    from bangkok_pipeline.devtools.generator import generate
    from bangkok_pipeline.devtools.sample import keep_first_days

    out = tmp_path_factory.mktemp("tower-source")
    generate(out, [Month(2019, 2)], seed=29, defects=True)
    (out / "manifest.json").unlink()
    for path in sorted(out.glob("*Floor*.csv")):
        keep_first_days(path, 2)
    return out


def load_directly(url: str, source: Path, month: str, home: Path) -> int:
    """Extract, validate and load one month with the library (no Dagster); the rows loaded."""
    from bangkok_pipeline.core.months import Month
    from bangkok_pipeline.transform.layers import run_layers
    from bangkok_pipeline.warehouse.ingest import extract_raw_month, load_month, validate_month

    layers = run_layers(Month.parse(month), f"test-{month}-{uuid.uuid4().hex[:6]}", home=home)
    with psycopg.connect(url, autocommit=True) as conn:
        extract_raw_month(conn, source, layers)
        validate_month(layers)
        return load_month(conn, layers).rows_loaded


def readings_and_quarantine(url: str) -> tuple[list[tuple], list[tuple]]:
    """What a load of a month leaves: per sensor count and float8 sum, and the quarantine rows."""
    with psycopg.connect(url) as conn:
        readings = conn.execute(
            "SELECT sensor_id, count(*), sum(value::float8) FROM sensor_readings GROUP BY 1 "
            "ORDER BY 1"
        ).fetchall()
        quarantine = conn.execute(
            "SELECT source_file, line_no, column_name, reason FROM quarantine ORDER BY 1, 2, 3"
        ).fetchall()
    return readings, quarantine


class _WebhookReceiver(BaseHTTPRequestHandler):
    """Collects the JSON bodies POSTed to it, like a chat or paging webhook would."""

    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """A local HTTP endpoint set as ALERT_WEBHOOK_URL; yields the alerts it received."""
    received: list[dict[str, Any]] = []
    handler = type("Receiver", (_WebhookReceiver,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("ALERT_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/hook")
    try:
        yield received
    finally:
        server.shutdown()
