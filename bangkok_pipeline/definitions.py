"""The single place where the pipeline's Dagster definitions are assembled."""

import dagster as dg

from bangkok_pipeline.defs.ingestion.resources import PostgresResource, SourceDirectory

defs = dg.Definitions(
    resources={"database": PostgresResource(), "source": SourceDirectory()},
)
