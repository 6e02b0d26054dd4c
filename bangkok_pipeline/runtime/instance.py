"""Point Dagster at its PostgreSQL storage: DAGSTER_HOME with our dagster.yaml, and its URL."""

import os
import shutil

import psycopg
from psycopg import sql

from bangkok_pipeline.core import settings
from bangkok_pipeline.db.connection import dagster_storage_url

STORAGE_URL_VARIABLE = "BANGKOK_DAGSTER_PG_URL"


def dagster_environment(database_url: str) -> dict[str, str]:
    """Variables that make `dagster` use this project's instance; writes DAGSTER_HOME if needed."""
    home = settings.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    source = settings.dagster_yaml()
    if not target.exists() or target.read_bytes() != source.read_bytes():
        shutil.copyfile(source, target)
    storage = settings.dagster_storage_url() or dagster_storage_url(database_url)
    return {"DAGSTER_HOME": str(home), STORAGE_URL_VARIABLE: storage}


def ensure_dagster_database(database_url: str) -> None:
    """Create the `dagster` database on the same server unless the user gave Dagster its own."""
    if settings.dagster_storage_url():
        return
    with psycopg.connect(database_url, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'dagster'").fetchone()
        if not found:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier("dagster")))


def activate(database_url: str) -> None:
    """Set the Dagster variables in this process, for in-process `materialize` and the CLI."""
    os.environ.update(dagster_environment(database_url))
