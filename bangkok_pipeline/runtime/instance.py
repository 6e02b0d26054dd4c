"""Point Dagster at its PostgreSQL storage: DAGSTER_HOME with our dagster.yaml, and its URL.

In this process the instance is built explicitly (`open_instance`); processes this project starts
(`up`'s webserver and daemon, a shell after `bangkok-pipeline env`) get the same two values as
variables in their own environment (`dagster_environment`).
"""

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from psycopg import sql

from bangkok_pipeline.core import settings
from bangkok_pipeline.db.connection import connect, dagster_storage_url

STORAGE_URL_VARIABLE = "BANGKOK_DAGSTER_PG_URL"


@dataclass(frozen=True)
class DagsterStorage:
    """Where this project's Dagster instance lives: its home (with our dagster.yaml) and the
    SQLAlchemy URL of its run, event and schedule storage."""

    home: Path
    url: str

    def environment(self) -> dict[str, str]:
        """The variables that make a `dagster` process use this instance."""
        return {"DAGSTER_HOME": str(self.home), STORAGE_URL_VARIABLE: self.url}


def dagster_storage(database_url: str) -> DagsterStorage:
    """The instance of the pipeline on `database_url`; writes DAGSTER_HOME's dagster.yaml if
    needed."""
    home = settings.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    source = settings.dagster_yaml()
    if not target.exists() or target.read_bytes() != source.read_bytes():
        shutil.copyfile(source, target)
    storage = settings.dagster_storage_url() or dagster_storage_url(database_url)
    return DagsterStorage(home, storage)


def dagster_environment(database_url: str) -> dict[str, str]:
    """Variables that make `dagster` use this project's instance, for a child's `env=`."""
    return dagster_storage(database_url).environment()


@contextmanager
def _variable(name: str, value: str) -> Iterator[None]:
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            del os.environ[name]
        else:
            os.environ[name] = previous


def open_instance(storage: DagsterStorage) -> dg.DagsterInstance:
    """This project's Dagster instance, built from its home without DAGSTER_HOME.

    dagster.yaml names the storage URL `env: BANGKOK_DAGSTER_PG_URL` (so that a password never
    sits in the file), and Dagster resolves such a value only from the process environment, once,
    while it builds the instance; no public API takes it as an argument. So the variable is set
    for that call alone and restored after it.
    """
    with _variable(STORAGE_URL_VARIABLE, storage.url):
        return dg.DagsterInstance.from_config(str(storage.home))


def ensure_dagster_database(database_url: str) -> None:
    """Create the `dagster` database on the same server unless the user gave Dagster its own."""
    if settings.dagster_storage_url():
        return
    with connect(database_url, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'dagster'").fetchone()
        if not found:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier("dagster")))
