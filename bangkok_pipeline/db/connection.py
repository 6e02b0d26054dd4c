"""Which PostgreSQL to use, and connecting to it with retries and errors a person can act on."""

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy.engine import URL

from bangkok_pipeline.core import settings
from bangkok_pipeline.db.embedded import EmbeddedServer
from bangkok_pipeline.db.queries import query

T = TypeVar("T")


class DatabaseUnavailable(RuntimeError):
    """The server did not answer after every retry."""


def embedded_server() -> EmbeddedServer:
    return EmbeddedServer(settings.bangkok_home())


def resolve_url() -> str:
    """`DATABASE_URL` if set, else the embedded server's (started on demand)."""
    return settings.database_url() or embedded_server().ensure_running()


def describe(url: str) -> str:
    """`host H, database D, user U` with no password: safe for logs and error messages."""
    params = conninfo_to_dict(url)
    host = params.get("host") or "localhost"
    port = f":{params['port']}" if params.get("port") else ""
    return (
        f"host {host}{port}, database {params.get('dbname', '?')}, user {params.get('user', '?')}"
    )


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
    """Open a psycopg 3 connection, retrying while the server does not answer."""
    attempts = attempts or settings.connect_attempts()
    try:
        return retry(
            lambda: psycopg.connect(url, connect_timeout=10, **kwargs),  # type: ignore[arg-type]
            attempts=attempts,
        )
    except psycopg.OperationalError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL ({describe(url)}) after {attempts} attempts: {reason}"
        ) from None


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


@contextmanager
def lock_holder(conn: psycopg.Connection, application_name: str) -> Iterator[psycopg.Connection]:
    """A second connection like `conn` (same server, login and options), to hold a lock in a
    transaction left open while `conn` runs transactions of its own. Settings that end idle
    transactions are off for it: they would release the lock under the running work. On the way
    out its transaction is rolled back before it closes: a closed socket is released by the
    server asynchronously, so the next attempt right after could still find the lock held."""
    holder = psycopg.connect(
        conn.info.dsn, password=conn.info.password, application_name=application_name
    )
    try:
        holder.execute(query("disable_idle_transaction_timeouts"))
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
