"""Versioned SQL migrations with rollback: `sql/migrations/NNNN_name.{up,down}.sql`.

Each step runs in its own transaction together with its row in `schema_migrations`, so a failed
step leaves nothing half-applied. A lock on `schema_migrations` that only its owner (or a superuser)
can take keeps two migrators from racing, and a checksum of every applied upgrade file catches a
migration edited after it ran.
"""

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bangkok_pipeline.core.settings import sql_dir
from bangkok_pipeline.db.connection import lock_holder

_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.up\.sql$")

_AT_BASE = "nothing to downgrade: the database is at base (no migration applied)"
_CREATE_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


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
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


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


def applied(conn: psycopg.Connection) -> dict[int, str]:
    """version -> checksum of what this database has applied."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    rows = conn.execute("SELECT version, checksum FROM schema_migrations ORDER BY version")
    return {version: checksum for version, checksum in rows.fetchall()}


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
    target = head(migrations) if target is None else target
    if target not in {0, *(m.version for m in migrations)}:
        raise MigrationError(f"no migration {target:04d}; known: {_known(migrations)}")
    done = applied(conn)
    _check_unchanged(migrations, done)
    if not _pending(migrations, done, target):
        return []  # no lock needed: a login that may only read schema_migrations gets here too
    with _migration_lock(conn):
        done = applied(conn)
        _check_unchanged(migrations, done)
        steps = []
        for migration in _pending(migrations, done, target):
            with conn.transaction():
                conn.execute(migration.up.read_text())
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
            steps.append(migration.label)
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
        steps = []
        for version in sorted((v for v in done if v > target), reverse=True):
            migration = by_version[version]
            with conn.transaction():
                conn.execute(migration.down.read_text())
                conn.execute("DELETE FROM schema_migrations WHERE version = %s", (version,))
            steps.append(migration.label)
        return steps


def _pending(migrations: list[Migration], done: dict[int, str], target: int) -> list[Migration]:
    return [m for m in migrations if m.version not in done and m.version <= target]


def _known(migrations: list[Migration]) -> str:
    return ", ".join(["0000 (base)", *(m.label for m in migrations)])


def _check_unchanged(migrations: list[Migration], done: dict[int, str]) -> None:
    for migration in migrations:
        recorded = done.get(migration.version)
        if recorded is not None and recorded != migration.checksum:
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
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        with suppress(psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
            conn.execute(_CREATE_VERSION_TABLE)  # raced by another migrator: it is there now
    holder = lock_holder(conn, "bangkok_pipeline migrator lock")
    try:
        holder.execute("LOCK TABLE schema_migrations IN SHARE UPDATE EXCLUSIVE MODE")
        yield
    finally:
        holder.close()  # ends the transaction: the server releases the lock
