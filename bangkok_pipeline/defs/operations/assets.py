"""The database itself as an asset of the operations domain: its health checks attach to it and
the maintenance jobs record what they did on it as observations."""

import dagster as dg

from bangkok_pipeline.defs import OWNERS

DATABASE = dg.AssetKey("postgres_database")

postgres_database = dg.AssetSpec(
    key=DATABASE,
    group_name="operations",
    kinds={"postgres"},
    owners=OWNERS,
    description="The pipeline's PostgreSQL database (DATABASE_URL, else the embedded server): "
    "checked by the health sensor and the database_health checks; partitions premade, old "
    "months archived and older months compressed by the maintenance jobs.",
)
