"""Resources both domains use: the pipeline's database, the source directory and the file
layers (health checks the object storage they may live in)."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import psycopg

from bangkok_pipeline.core import settings
from bangkok_pipeline.core.months import Month
from bangkok_pipeline.db.connection import (
    DatabaseUnavailable,
    TransactionPooler,
    connect,
    is_transient,
    resolve_url,
    timeout_hint,
)
from bangkok_pipeline.ops import health
from bangkok_pipeline.transform.layers import RunLayers, layers_root, step_layers


class PostgresResource(dg.ConfigurableResource):
    """The pipeline's PostgreSQL: `database_url`, else DATABASE_URL, else the embedded server.
    Its connections carry the pipeline's timeouts; a transaction-mode pooler fails the step before
    it writes anything, without retries."""

    database_url: str | None = None

    def url(self) -> str:
        """The URL to work on; starts the embedded server when it is the one and not running."""
        return self.database_url or resolve_url()

    def url_to_examine(self) -> tuple[str | None, str | None]:
        """The URL for health, which never starts the embedded server (a stopped server is what
        it must report): the URL, or None and why there is none to try."""
        return (self.database_url, None) if self.database_url else health.target_url()

    @contextmanager
    def connection(self, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        """A connection; errors that a retry cannot fix fail the step at once, with the cause."""
        try:
            with connect(self.url(), autocommit=autocommit) as conn:
                yield conn
        except DatabaseUnavailable:
            raise
        except TransactionPooler as error:
            raise dg.Failure(description=str(error), allow_retries=False) from None
        except psycopg.Error as error:
            if is_transient(error):
                raise
            raise dg.Failure(
                description=f"database error ({type(error).__name__}): {error}".strip()
                + timeout_hint(error),
                allow_retries=False,
            ) from error


class SourceDirectory(dg.ConfigurableResource):
    """Where the CU-BEMS CSV files are: `path`, else CUBEMS_SOURCE_DIR, else BANGKOK_HOME/source."""

    path: str | None = None

    def directory(self) -> Path:
        return Path(self.path).expanduser().resolve() if self.path else settings.source_dir()


class LayersResource(dg.ConfigurableResource):
    """Where each run's file layers and the published ones live: object storage at `url` (else
    BANGKOK_LAYERS_URL), so that steps share no disk; without one, the folder `root`, else
    BANGKOK_HOME/layers."""

    root: str | None = None
    url: str | None = None

    def directory(self) -> Path:
        return Path(self.root).expanduser().resolve() if self.root else layers_root()

    def store_url(self) -> str | None:
        """The object storage in use, if any."""
        return self.url or settings.layers_url()

    @contextmanager
    def for_step(
        self,
        month: Month,
        run_id: str,
        lineage: tuple[str, ...],
        published_fallback: bool,
        building: int,
    ) -> Iterator[RunLayers]:
        """The layers of one step of a run of `building`'s `month`
        (`transform.layers.step_layers`)."""
        with step_layers(
            month,
            run_id,
            lineage,
            published_fallback,
            root=self.directory(),
            url=self.store_url(),
            building=building,
        ) as layers:
            yield layers
