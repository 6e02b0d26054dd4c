"""Versioned SQL migrations with rollback: `sql/migrations/NNNN_name.{up,down}.sql`; and
repeatable objects: `sql/functions/<schema>.<name>.sql`, re-applied whenever they change.

Each step runs in its own transaction together with its row in `schema_migrations`, so a failed
step leaves nothing half-applied. A lock on `schema_migrations` that only its owner (or a superuser)
can take keeps two migrators from racing, and a checksum of every applied upgrade file catches a
migration edited after it ran. After the versioned steps, each repeatable whose checksum differs
from the one in `schema_repeatables` (migration 0007) runs in a transaction with its new row; one
runs only once the version its `-- requires: NNNN_name` line names is applied (and 0007 too).
"""

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.abc import Params

from bangkok_pipeline.core.settings import sql_dir
from bangkok_pipeline.db.connection import lock_holder, table_exists
from bangkok_pipeline.db.queries import query

_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.up\.sql$")
_REPEATABLE_FILE = re.compile(r"^(?P<name>[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)\.sql$")
_REQUIRES = re.compile(r"^-- requires: (?P<version>\d{4})_[a-z0-9_]+$", re.MULTILINE)
_REPLACES = re.compile(r"^-- replaces checksum: (?P<checksum>[0-9a-f]{64})$", re.MULTILINE)

_AT_BASE = "nothing to downgrade: the database is at base (no migration applied)"


class MigrationError(RuntimeError):
    """A migration request that cannot be carried out; nothing was changed."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up: Path
    down: Path

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.up.read_bytes()).hexdigest()

    @property
    def accepted_checksums(self) -> set[str]:
        """This file's checksum and those of earlier texts it declares equivalent to (lines
        `-- replaces checksum: <sha256>`): an edit that changes nothing where the migration ran."""
        earlier = _REPLACES.findall(self.up.read_text())
        return {self.checksum, *earlier}

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True)
class Repeatable:
    """A `CREATE OR REPLACE` file, `functions/<schema>.<name>.sql`; `requires` is the version
    that must be applied before it may run (its first line: `-- requires: 0004_multi_tenant`)."""

    name: str
    path: Path
    requires: int

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.name} (repeatable)"


def available(directory: Path | None = None) -> list[Migration]:
    """Every migration on disk, in version order; each must have its downgrade beside it."""
    folder = (directory or sql_dir()) / "migrations"
    migrations = []
    for path in sorted(folder.glob("*.up.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path}: expected a name like 0001_core_schema.up.sql")
        down = path.with_name(path.name.replace(".up.sql", ".down.sql"))
        if not down.exists():
            raise MigrationError(f"{path.name} has no downgrade {down.name}")
        migrations.append(Migration(int(match["version"]), match["name"], path, down))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a version number in {folder}")
    return migrations


def repeatables(directory: Path | None = None) -> list[Repeatable]:
    """Every repeatable on disk, in name order; each must say which version it requires."""
    folder = (directory or sql_dir()) / "functions"
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = _REPEATABLE_FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path}: expected a name like api.latest_readings.sql")
        requires = _REQUIRES.search(path.read_text())
        if not requires:
            raise MigrationError(
                f"{path.name}: expected a line like `-- requires: 0004_multi_tenant`, naming the "
                "migration that creates what it depends on"
            )
        found.append(Repeatable(match["name"], path, int(requires["version"])))
    return found


def applied(conn: psycopg.Connection) -> dict[int, str]:
    """version -> checksum of what this database has applied."""
    if not table_exists(conn, "schema_migrations"):
        return {}
    rows = conn.execute("SELECT version, checksum FROM schema_migrations ORDER BY version")
    return {version: checksum for version, checksum in rows.fetchall()}


def applied_repeatables(conn: psycopg.Connection) -> dict[str, str] | None:
    """name -> checksum of the repeatables this database last applied; None while it has no
    `schema_repeatables` (before 0007): then no repeatable may run."""
    if not table_exists(conn, "schema_repeatables"):
        return None
    rows = conn.execute("SELECT name, checksum FROM schema_repeatables ORDER BY name")
    return {name: checksum for name, checksum in rows.fetchall()}


def due_repeatables(
    conn: psycopg.Connection, done: dict[int, str], found: list[Repeatable]
) -> list[Repeatable]:
    """The repeatables to (re)apply now: new or changed since last applied, and whose required
    version is applied (so is 0007, or there is no record to compare with)."""
    recorded = applied_repeatables(conn)
    if recorded is None:
        return []
    return [r for r in found if r.requires in done and recorded.get(r.name) != r.checksum]


def current_version(conn: psycopg.Connection) -> int:
    """The highest applied version, 0 at base."""
    return max(applied(conn), default=0)


def head(migrations: list[Migration] | None = None) -> int:
    return max((m.version for m in migrations or available()), default=0)


def migrate(
    conn: psycopg.Connection, target: int | None = None, directory: Path | None = None
) -> list[str]:
    """Apply pending upgrades up to `target` (default: head); return the labels applied."""
    migrations = available(directory)
    found = repeatables(directory)
    target = head(migrations) if target is None else target
    if target not in {0, *(m.version for m in migrations)}:
        raise MigrationError(f"no migration {target:04d}; known: {_known(migrations)}")
    _check_requirements(migrations, found)
    done = applied(conn)
    _check_unchanged(migrations, done)
    if not _pending(migrations, done, target) and not due_repeatables(conn, done, found):
        return []  # no lock needed: a login that may only read schema_* tables gets here too
    with _migration_lock(conn):
        done = applied(conn)
        _check_unchanged(migrations, done)
        steps: list[str] = []
        for migration in _pending(migrations, done, target):
            record: tuple[str, Params] = (
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
            _run_script(conn, migration.up.name, migration.up.read_text(), steps, record)
            steps.append(migration.label)
        for repeatable in due_repeatables(conn, applied(conn), found):
            content = repeatable.path.read_bytes()  # once: the checksum is of what ran
            record = (
                query("upsert_schema_repeatable"),
                {"name": repeatable.name, "checksum": hashlib.sha256(content).hexdigest()},
            )
            _run_script(conn, repeatable.path.name, content.decode(), steps, record)
            steps.append(repeatable.label)
        return steps


def downgrade(
    conn: psycopg.Connection, target: int | None = None, directory: Path | None = None
) -> list[str]:
    """Undo applied migrations down to `target` (default: one step; 0 = base)."""
    migrations = available(directory)
    if not applied(conn):  # before the lock, which would create schema_migrations
        raise MigrationError(_AT_BASE)
    with _migration_lock(conn):
        done = applied(conn)
        if not done:
            raise MigrationError(_AT_BASE)
        current = max(done)
        if target is None:
            lower = [v for v in done if v < current]
            target = max(lower, default=0)
        if target < 0:
            raise MigrationError(f"cannot downgrade to {target}: base (0) is the lowest version")
        if target > current:
            raise MigrationError(
                f"cannot downgrade to {target:04d}: the database is at {current:04d}"
            )
        if target != 0 and target not in done:
            raise MigrationError(
                f"{target:04d} is not an applied version; applied: "
                f"{', '.join(f'{v:04d}' for v in sorted(done))}"
            )
        by_version = {m.version: m for m in migrations}
        missing = [v for v in done if v > target and v not in by_version]
        if missing:
            raise MigrationError(f"no downgrade file on disk for applied version {missing[0]:04d}")
        steps: list[str] = []
        for version in sorted((v for v in done if v > target), reverse=True):
            migration = by_version[version]
            record: tuple[str, Params] = (
                "DELETE FROM schema_migrations WHERE version = %s",
                (version,),
            )
            _run_script(conn, migration.down.name, migration.down.read_text(), steps, record)
            steps.append(migration.label)
        return steps


def _run_script(
    conn: psycopg.Connection, file: str, text: str, done: list[str], record: tuple[str, Params]
) -> None:
    """Run a step's statements, then `record` (its row in schema_*), in one transaction. A failure
    is one line: the file, the line and first words of the failing statement, the server's reason
    (it names the missing privilege, for a login that lacks one); the step is rolled back, the
    steps before it stay."""
    line, statement = 0, ""
    try:
        with conn.transaction():
            for line, statement in statements(text):  # noqa: B007 - named in the error below
                conn.execute(statement)
            conn.execute(*record)
    except psycopg.errors.Error as error:
        reason = (error.diag.message_primary or str(error)).strip()
        if isinstance(error, psycopg.errors.InsufficientPrivilege):
            reason += f" (the login {conn.info.user} lacks a privilege this step needs)"
        words = " ".join(statement.split())
        shown = words if len(words) <= 60 else words[:60] + "…"
        before = f"; the steps before it stay applied (up to {done[-1]})" if done else ""
        raise MigrationError(
            f"{file} line {line} ({shown}) failed: {reason}; nothing of it was applied{before}"
        ) from None


_TOKEN = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|(\$\w*\$)|;", re.DOTALL)


_LEADING_COMMENT = re.compile(r"\s*(?:--[^\n]*|/\*.*?\*/)", re.DOTALL)


def statements(text: str) -> Iterator[tuple[int, str]]:
    """The SQL statements of a script with the line each starts on: split at semicolons outside
    comments, quoted strings, quoted identifiers and dollar-quoted bodies (DO blocks, functions)."""
    start = 0
    position = 0
    while True:
        match = _TOKEN.search(text, position)
        if match is None:
            break
        position = match.end()
        if match[1]:  # a dollar quote: skip to its closing tag
            close = text.find(match[1], position)
            position = len(text) if close < 0 else close + len(match[1])
        elif match[0] == ";":
            yield from _statement(text, start, position)
            start = position
    yield from _statement(text, start, len(text))


def _statement(text: str, start: int, end: int) -> Iterator[tuple[int, str]]:
    """The statement in text[start:end] without its leading comments, if it has code."""
    while match := _LEADING_COMMENT.match(text, start, end):
        start = match.end()
    body = text[start:end].strip()
    if body.strip(";"):
        offset = start + len(text[start:end]) - len(text[start:end].lstrip())
        yield text.count("\n", 0, offset) + 1, body


def _pending(migrations: list[Migration], done: dict[int, str], target: int) -> list[Migration]:
    return [m for m in migrations if m.version not in done and m.version <= target]


def _known(migrations: list[Migration]) -> str:
    return ", ".join(["0000 (base)", *(m.label for m in migrations)])


def _check_requirements(migrations: list[Migration], found: list[Repeatable]) -> None:
    versions = {m.version for m in migrations}
    for repeatable in found:
        if repeatable.requires not in versions:
            raise MigrationError(
                f"{repeatable.path.name} requires migration {repeatable.requires:04d}, "
                f"which does not exist; known: {_known(migrations)}"
            )


def _check_unchanged(migrations: list[Migration], done: dict[int, str]) -> None:
    for migration in migrations:
        recorded = done.get(migration.version)
        if recorded is not None and recorded not in migration.accepted_checksums:
            raise MigrationError(
                f"{migration.up.name} was edited after it was applied (checksum differs); "
                "write a new migration instead"
            )


@contextmanager
def _migration_lock(conn: psycopg.Connection) -> Iterator[None]:
    """Serialise migrators: a second connection holds SHARE UPDATE EXCLUSIVE on `schema_migrations`
    for the whole run (creating the table first at base). The mode conflicts with itself, not with
    the steps' inserts and deletes; and unlike an advisory key, which any login may take, only a
    role allowed to change the table can take it, so no API login can block migrations. A
    migration must therefore not ALTER, COMMENT ON or otherwise lock `schema_migrations` itself."""
    if not conn.autocommit:
        raise MigrationError("migrations need an autocommit connection")
    if not table_exists(conn, "schema_migrations"):
        # raced by another migrator: it is there now (the race may surface as its row type)
        with suppress(
            psycopg.errors.UniqueViolation,
            psycopg.errors.DuplicateTable,
            psycopg.errors.DuplicateObject,
        ):
            try:
                conn.execute(query("create_schema_migrations"))
            except psycopg.errors.InsufficientPrivilege as error:
                raise MigrationError(
                    f"cannot create schema_migrations: {error.diag.message_primary} (the login "
                    f"{conn.info.user} needs CREATE on schema public); nothing was applied"
                ) from None
    with lock_holder(conn, "bangkok_pipeline migrator lock") as holder:
        holder.execute("LOCK TABLE schema_migrations IN SHARE UPDATE EXCLUSIVE MODE")
        yield
