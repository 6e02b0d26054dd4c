"""Health checks on the database asset: one check per concern of `bangkok-pipeline health`.

The health sensor reports the same evaluations every few minutes without a run; these checks
let anyone run them on demand from the UI (or the `database_health` job).
"""

from collections.abc import Iterator, Mapping
from typing import Any, TypedDict

import dagster as dg

from bangkok_pipeline.defs.operations.assets import DATABASE
from bangkok_pipeline.defs.resources import LayersResource, PostgresResource, SourceDirectory
from bangkok_pipeline.ops import health

_DESCRIPTIONS = {
    "database": "Reachable, and PostgreSQL 15 or newer.",
    "migrations": "Every migration on disk applied, none unknown or edited; repeatables current.",
    "connections": "Connections in use under 80 % of max_connections (critical from 95 %).",
    "database_size": "Database size under 80 % of BANGKOK_DB_BUDGET (critical over it).",
    "slow_statements": "No statement over BANGKOK_SLOW_STATEMENT_MS mean (pg_stat_statements).",
    "loads": "Every month with source data loaded, none changed since, no failed latest load.",
    "partitions": "Every loaded month's partitions attached or archived; no gaps.",
    "staging": "No orphaned unattached tables in schema partitions, no stuck loads.",
    "access": "No API role (bangkok_api's members, PUBLIC; Supabase's anon, authenticated and "
    "service_role where they exist) holds a privilege around Row Level Security; RLS enabled "
    "and forced on every API-readable table.",
    "layers": "The object storage the file layers live in (BANGKOK_LAYERS_URL) answers, if any.",
}

HEALTH_CHECK_SPECS = [
    dg.AssetCheckSpec(name=concern, asset=DATABASE, description=_DESCRIPTIONS[concern])
    for concern in health.CONCERNS
]


class CheckFields(TypedDict):
    passed: bool
    severity: dg.AssetCheckSeverity
    metadata: Mapping[str, Any]


def check_fields(finding: health.Finding) -> CheckFields:
    """How a finding reads as an asset-check outcome: passed only when ok; critical is an error,
    anything else a warning."""
    return {
        "passed": finding.status is health.Status.OK,
        "severity": dg.AssetCheckSeverity.ERROR
        if finding.status is health.Status.CRITICAL
        else dg.AssetCheckSeverity.WARN,
        "metadata": {
            "status": finding.status.value,
            "message": finding.message,
            "details": dg.MetadataValue.json(finding.as_dict()["details"]),
        },
    }


def evaluate(
    database: PostgresResource, source: SourceDirectory, layers: LayersResource
) -> health.Report:
    """The health report for the configured database, never starting the embedded server."""
    url, not_running = database.url_to_examine()
    return health.check_health(
        url,
        source.directory(),
        health.Limits.from_settings(),
        not_running=not_running,
        layers_url=layers.store_url(),
    )


@dg.multi_asset_check(
    name="database_health_checks",
    specs=HEALTH_CHECK_SPECS,
    description="Database health, one check per concern (see `bangkok-pipeline health`).",
)
def database_health(
    database: PostgresResource, source: SourceDirectory, layers: LayersResource
) -> Iterator[dg.AssetCheckResult]:
    for finding in evaluate(database, source, layers).findings:
        yield dg.AssetCheckResult(
            asset_key=DATABASE,
            check_name=finding.concern,
            **check_fields(finding),
        )


operations_checks = [database_health]
