"""Resources of the ingestion domain: the file layers, and the retry policy of database steps
(the database and the source directory are shared: `bangkok_pipeline.defs.resources`)."""

from pathlib import Path

import dagster as dg

from bangkok_pipeline.transform.layers import layers_root

# Transient database errors are retried by this policy (exponential backoff with jitter);
# permanent ones become a Failure that Dagster does not retry.
DATABASE_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


class LayersResource(dg.ConfigurableResource):
    """Where each run's file layers and the published ones live: `root`, else
    BANGKOK_HOME/layers."""

    root: str | None = None

    def directory(self) -> Path:
        return Path(self.root).expanduser().resolve() if self.root else layers_root()
