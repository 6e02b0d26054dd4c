"""A real PgBouncer in front of a test server, as hosted PostgreSQL puts one (Supabase's
Supavisor works the same way): on a Unix socket in a temporary directory, every database of the
server behind it, trust authentication, run as an unprivileged OS user (`postgres` under root;
PgBouncer refuses to run as root)."""

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
PORT = 6432  # PgBouncer's default; 6543 is refused by its shape before any probe


class PgBouncer:
    """`pool_mode` transaction (each transaction to any server connection) or session."""

    def __init__(self, server_url: str, pool_mode: str) -> None:
        if not Path(PGBOUNCER).exists():
            raise RuntimeError("pgbouncer not found: apt-get install pgbouncer")
        self.server = conninfo_to_dict(server_url)
        self.pool_mode = pool_mode
        self.root = Path(tempfile.mkdtemp(prefix=f"bangkok-pgbouncer-{pool_mode}-"))
        self._user: dict[str, object] = {}
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, dbname: str = "postgres") -> str:
        """The server's URL through the pooler: same login, another socket."""
        return make_conninfo(
            host=str(self.root), port=PORT, user=str(self.server["user"]), dbname=dbname
        )

    def start(self) -> "PgBouncer":
        (self.root / "users.txt").write_text('"postgres" ""\n"supabase_admin" ""\n')
        (self.root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={self.server['host']} port={self.server.get('port', 5432)}\n"
            "[pgbouncer]\n"
            "listen_addr =\n"
            f"listen_port = {PORT}\n"
            f"unix_socket_dir = {self.root}\n"
            "auth_type = trust\n"
            f"auth_file = {self.root / 'users.txt'}\n"
            f"pool_mode = {self.pool_mode}\n"
            "default_pool_size = 5\n"
            f"logfile = {self.root / 'pgbouncer.log'}\n"
        )
        self._process = subprocess.Popen(  # type: ignore[call-overload]
            [PGBOUNCER, str(self.root / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **self._user,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    log = self.root / "pgbouncer.log"
                    raise RuntimeError(
                        f"pgbouncer did not start: {log.read_text() if log.exists() else ''}"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)
