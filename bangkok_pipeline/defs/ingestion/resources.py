"""Resources of the ingestion domain: the file layers, and the retry policy of database steps
(the database and the source directory are shared: `bangkok_pipeline.defs.resources`)."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from bangkok_pipeline.core import settings
from bangkok_pipeline.core.months import Month
from bangkok_pipeline.transform.layers import RunLayers, layers_root, step_layers

# Transient database errors are retried by this policy (exponential backoff with jitter);
# permanent ones become a Failure that Dagster does not retry.
DATABASE_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


class LayersResource(dg.ConfigurableResource):
    """Where each run's file layers and the published ones live: object storage at `url` (else
    BANGKOK_LAYERS_URL), so that steps share no disk; without one, the folder `root`, else
    BANGKOK_HOME/layers."""

    root: str | None = None
    url: str | None = None

    def directory(self) -> Path:
        return Path(self.root).expanduser().resolve() if self.root else layers_root()

    @contextmanager
    def for_step(
        self, month: Month, run_id: str, lineage: tuple[str, ...], published_fallback: bool
    ) -> Iterator[RunLayers]:
        """The layers of one step of a run (`transform.layers.step_layers`)."""
        url = self.url or settings.layers_url()
        with step_layers(
            month, run_id, lineage, published_fallback, root=self.directory(), url=url
        ) as layers:
            yield layers
