"""The retry policy of the ingestion domain's database steps (its resources, the database, the
source directory and the file layers, are shared: `bangkok_pipeline.defs.resources`)."""

import dagster as dg

# Transient database errors are retried by this policy (exponential backoff with jitter);
# permanent ones become a Failure that Dagster does not retry.
DATABASE_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
