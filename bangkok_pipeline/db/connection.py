"""Which PostgreSQL to use, and connecting to it with retries and errors a person can act on;
each connection gets the pipeline's timeouts, and a transaction-mode pooler is refused."""

import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy.engine import URL

from bangkok_pipeline.core import settings
from bangkok_pipeline.db.embedded import EmbeddedServer, EmbeddedServerError, platform_problem
from bangkok_pipeline.db.queries import query

T = TypeVar("T")


class DatabaseUnavailable(RuntimeError):
    """The server did not answer after every retry."""


class TransactionPooler(RuntimeError):
    """The URL leads to a transaction-mode pooler (PgBouncer, Supavisor), which hands each
    transaction to any server connection: the pipeline keeps locks, settings and staging tables in
    its session, so it refuses to start there. Not transient: the URL must change."""


# Supabase's transaction pooler (Supavisor; PgBouncer on a dedicated pooler) listens on 6543,
# its session pooler and the direct connection on 5432.
TRANSACTION_POOLER_PORT = 6543


def embedded_server() -> EmbeddedServer:
    """The embedded server under BANGKOK_HOME; on a platform it cannot run on, one clear error."""
    problem = platform_problem(sys.platform)
    if problem:
        raise EmbeddedServerError(problem)
    return EmbeddedServer(settings.bangkok_home())


def resolve_url() -> str:
    """`DATABASE_URL` if set, else the embedded server's (started on demand). A URL on the
    transaction pooler's port is refused here, before anything uses it."""
    url = settings.database_url()
    if url:
        refuse_transaction_pooler_port(url)
        return url
    return embedded_server().ensure_running()


def describe(url: str) -> str:
    """`host H, database D, user U` with no password: safe for logs and error messages."""
    params = conninfo_to_dict(url)
    host = params.get("host") or "localhost"
    port = f":{params['port']}" if params.get("port") else ""
    return (
        f"host {host}{port}, database {params.get('dbname', '?')}, user {params.get('user', '?')}"
    )


def client_environment(url: str) -> tuple[str, dict[str, str]]:
    """For a client program (psql, pg_dump): a conninfo without the password, and this process's
    environment plus PGPASSWORD carrying it (a password in argv would show in `ps`)."""
    params = conninfo_to_dict(url)
    password = params.pop("password", None)
    env = {**os.environ}
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**{k: str(v) for k, v in params.items()}), env


def with_database(url: str, dbname: str) -> str:
    """The same server and credentials, another database."""
    return make_conninfo(url, dbname=dbname)


def dagster_storage_url(url: str, database: str = "dagster") -> str:
    """SQLAlchemy URL of Dagster's own database (`dagster`) on the same server, for dagster.yaml.

    dagster-postgres needs psycopg2 (with psycopg 3 its `NOTIFY run_events, $1` fails), so the
    URL names the psycopg2 driver explicitly.
    """
    params = conninfo_to_dict(url)
    host = str(params.pop("host", "")) or None
    port = params.pop("port", None)
    query = {k: str(v) for k, v in params.items() if k not in {"user", "password", "dbname"}}
    if host and host.startswith("/"):
        query["host"] = host
        host = None
    storage = URL.create(
        "postgresql+psycopg2",
        username=str(params.get("user", "postgres")),
        password=str(params["password"]) if params.get("password") else None,
        host=host,
        port=int(port) if port and host else None,
        database=database,
        query=query,
    )
    return storage.render_as_string(hide_password=False)


def retry(
    action: Callable[[], T],
    attempts: int = 5,
    first_delay: float = 0.5,
    transient: tuple[type[BaseException], ...] = (psycopg.OperationalError,),
) -> T:
    """Run `action`, retrying transient errors with exponential backoff and full jitter."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except transient:
            if attempt == attempts:
                raise
            time.sleep(random.uniform(0, first_delay * 2 ** (attempt - 1)))
    raise AssertionError("unreachable")


def connect(url: str, attempts: int | None = None, **kwargs: object) -> psycopg.Connection:
    """Open a psycopg 3 connection, retrying while the server does not answer; set the
    pipeline's timeouts on it (`session_timeouts`) and refuse a transaction-mode pooler
    (TransactionPooler) before the caller can write anything."""
    refuse_transaction_pooler_port(url)
    attempts = attempts or settings.connect_attempts()
    try:
        conn = retry(
            lambda: psycopg.connect(url, connect_timeout=10, **kwargs),  # type: ignore[arg-type]
            attempts=attempts,
        )
    except psycopg.OperationalError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL ({describe(url)}) after {attempts} attempts: {reason}"
        ) from None
    try:
        _prepare_session(conn, url)
    except BaseException:
        conn.close()
        raise
    return conn


def session_timeouts() -> dict[str, str]:
    """`statement_timeout` and `lock_timeout` as the pipeline sets them on its connections
    (BANGKOK_STATEMENT_TIMEOUT_SECONDS, BANGKOK_LOCK_TIMEOUT_SECONDS; '0' is no limit)."""
    return {
        "statement_timeout": _milliseconds(settings.statement_timeout_seconds()),
        "lock_timeout": _milliseconds(settings.lock_timeout_seconds()),
    }


def _milliseconds(seconds: float) -> str:
    return f"{math.ceil(seconds * 1000)}ms"


def _prepare_session(conn: psycopg.Connection, url: str) -> None:
    """The timeouts, set for the session; then, if a pooler answered the handshake (the server
    process's id differs from the one announced), whether session state survives."""
    if conn.info.port == TRANSACTION_POOLER_PORT:  # a port from PGPORT or a service file
        raise TransactionPooler(_pooler_message(url, f"port {TRANSACTION_POOLER_PORT}"))
    with conn.transaction():
        pid = _scalar(conn, query("set_session_timeouts"), session_timeouts())
    if pid != conn.info.backend_pid and not _keeps_its_session(conn, url, pid):
        raise TransactionPooler(
            _pooler_message(url, "its session did not survive from one transaction to the next")
        )


def _keeps_its_session(conn: psycopg.Connection, url: str, pid: int) -> bool:
    """Whether `conn`, behind a pooler, keeps its server process (`pid`) between transactions.
    Asking `conn` alone does not tell: a quiet transaction-mode pool gives a lone client the server
    it has just released. So a second connection opens a transaction while `conn` is idle: in
    transaction mode it gets `pid` (the idle server; `conn`'s next transaction then gets another)
    unless busier clients took it first; in session mode, as on a direct connection, `pid` stays
    `conn`'s."""
    with psycopg.connect(url, connect_timeout=10) as other:
        other_pid = _scalar(other, "SELECT pg_backend_pid()")
        with conn.transaction():
            again = _scalar(conn, "SELECT pg_backend_pid()")
        other.rollback()
    return other_pid != pid and again == pid


def _scalar(
    conn: psycopg.Connection, statement: str, params: Mapping[str, Any] | None = None
) -> Any:
    """The last column of the one row `statement` returns."""
    row = conn.execute(statement, params).fetchone()
    assert row is not None
    return row[-1]


def refuse_transaction_pooler_port(url: str) -> None:
    """Raise TransactionPooler for a URL on port 6543, Supabase's transaction pooler: by its shape,
    before connecting."""
    ports = str(conninfo_to_dict(url).get("port") or "").split(",")
    if str(TRANSACTION_POOLER_PORT) in (p.strip() for p in ports):
        raise TransactionPooler(_pooler_message(url, f"port {TRANSACTION_POOLER_PORT}"))


def _pooler_message(url: str, evidence: str) -> str:
    """One line: what was refused, why, and the URL to use instead."""
    params = conninfo_to_dict(url)
    host, user = str(params.get("host") or ""), str(params.get("user") or "")
    ref = user.partition(".")[2] if user.startswith("postgres.") else ""
    if not ref and host.startswith("db.") and host.endswith(".supabase.co"):
        ref = host.split(".")[1]
    direct = f"db.{ref or '<ref>'}.supabase.co:5432" + (" as user postgres" if ref else "")
    session = f"{host}:5432" if host and not host.startswith("/") else "the same host on port 5432"
    return (
        f"{describe(url)} is a transaction-mode pooler ({evidence}): it hands each transaction to "
        "any server connection, and the pipeline keeps locks and settings in its session. "
        f"Use the session pooler ({session}) or the direct connection (Supabase: {direct}) "
        "in DATABASE_URL instead"
    )


# Connection loss, server shutting down or starting, too many connections, serialization
# failure, deadlock, lock timeout: a later attempt can succeed.
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "57P", "53300", "40001", "40P01", "55P03")


def is_transient(error: BaseException) -> bool:
    """Whether retrying the same work later may succeed (as opposed to bad data or schema)."""
    if isinstance(error, DatabaseUnavailable):
        return True
    if not isinstance(error, psycopg.Error):
        return False
    state = error.sqlstate
    if state is None:
        return isinstance(error, psycopg.OperationalError)
    return state.startswith(_TRANSIENT_SQLSTATE_PREFIXES)


def timeout_hint(error: BaseException) -> str:
    """For a statement the pipeline's statement timeout cancelled: which setting allows more
    (appended to the error's message); else empty."""
    if isinstance(error, psycopg.errors.QueryCanceled) and "statement timeout" in str(error):
        limit = settings.statement_timeout_seconds()
        return (
            f" (BANGKOK_STATEMENT_TIMEOUT_SECONDS is {limit:g}: raise it if the statement "
            "needs longer)"
        )
    return ""


@contextmanager
def lock_holder(conn: psycopg.Connection, application_name: str) -> Iterator[psycopg.Connection]:
    """A second connection like `conn` (same server, login and options), to hold a lock in a
    transaction left open while `conn` runs transactions of its own. Settings that end idle
    transactions are off for it: they would release the lock under the running work; its wait for
    the lock is bounded by the statement timeout, not the lock timeout. On the way out its
    transaction is rolled back before it closes: a closed socket is released by the server
    asynchronously, so the next attempt right after could still find the lock held."""
    holder = psycopg.connect(
        conn.info.dsn, password=conn.info.password, application_name=application_name
    )
    try:
        holder.execute(query("set_lock_holder_timeouts"), session_timeouts())
        holder.commit()
        yield holder
    finally:
        if not holder.closed and not holder.broken:
            with suppress(psycopg.Error):
                holder.rollback()
        holder.close()


def table_exists(conn: psycopg.Connection, name: str) -> bool:
    """Whether `name` (optionally schema-qualified) is a relation on the search path."""
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])
