"""Resources of the ingestion domain: the database and the source directory."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import psycopg

from bangkok_pipeline import settings
from bangkok_pipeline.lib.database import connect, resolve_url


class PostgresResource(dg.ConfigurableResource):
    """The pipeline's PostgreSQL: `database_url`, else DATABASE_URL, else the embedded server."""

    database_url: str | None = None

    def url(self) -> str:
        return self.database_url or resolve_url()

    @contextmanager
    def connection(self, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        with connect(self.url(), autocommit=autocommit) as conn:
            yield conn


class SourceDirectory(dg.ConfigurableResource):
    """Where the CU-BEMS CSV files are: `path`, else CUBEMS_SOURCE_DIR, else BANGKOK_HOME/source."""

    path: str | None = None

    def directory(self) -> Path:
        return Path(self.path).expanduser().resolve() if self.path else settings.source_dir()
