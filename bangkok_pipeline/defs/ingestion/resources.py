"""Resources of the ingestion domain: the database and the source directory."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import psycopg

from bangkok_pipeline.core import settings
from bangkok_pipeline.db.connection import DatabaseUnavailable, connect, is_transient, resolve_url

# Transient database errors are retried by this policy (exponential backoff with jitter);
# permanent ones become a Failure that Dagster does not retry.
DATABASE_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


class PostgresResource(dg.ConfigurableResource):
    """The pipeline's PostgreSQL: `database_url`, else DATABASE_URL, else the embedded server."""

    database_url: str | None = None

    def url(self) -> str:
        return self.database_url or resolve_url()

    @contextmanager
    def connection(self, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        """A connection; errors that a retry cannot fix fail the step at once, with the cause."""
        try:
            with connect(self.url(), autocommit=autocommit) as conn:
                yield conn
        except DatabaseUnavailable:
            raise
        except psycopg.Error as error:
            if is_transient(error):
                raise
            raise dg.Failure(
                description=f"database error ({type(error).__name__}): {error}".strip(),
                allow_retries=False,
            ) from error


class SourceDirectory(dg.ConfigurableResource):
    """Where the CU-BEMS CSV files are: `path`, else CUBEMS_SOURCE_DIR, else BANGKOK_HOME/source."""

    path: str | None = None

    def directory(self) -> Path:
        return Path(self.path).expanduser().resolve() if self.path else settings.source_dir()
