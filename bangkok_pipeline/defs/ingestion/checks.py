"""Asset checks that query the loaded building-month in PostgreSQL (cheap ones live on the
assets)."""

import dagster as dg
import psycopg

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.defs.ingestion.assets import HOURLY, READINGS
from bangkok_pipeline.defs.ingestion.partitions import (
    building_month_partitions,
    registered_building,
)
from bangkok_pipeline.defs.resources import PostgresResource
from bangkok_pipeline.transform import heatmap
from bangkok_pipeline.warehouse import access, quality
from bangkok_pipeline.warehouse.partitions import TABLES

_COMPLETENESS_WARNING = 0.9


def _building_month(
    context: dg.AssetCheckExecutionContext, conn: psycopg.Connection
) -> tuple[int, Month]:
    """The id of the building and the month the partition names."""
    building, month = registered_building(conn, context.partition_key)
    return building.building_id, month


@dg.asset_check(
    asset=READINGS,
    blocking=True,
    partitions_def=building_month_partitions,
    description="Per sensor, the live partition's count, sum and order-independent "
    "hash equal the validated frame's (both kept in table reconciliation).",
)
def reconciliation(
    context: dg.AssetCheckExecutionContext, database: PostgresResource
) -> dg.AssetCheckResult:
    with database.connection(autocommit=True) as conn:
        building, month = _building_month(context, conn)
        if not quality.partition_exists(conn, month, building):
            return dg.AssetCheckResult(passed=False, metadata={"error": "partition missing"})
        mismatched = quality.reconcile_live(conn, month, context.run.run_id, building)
    return dg.AssetCheckResult(
        passed=not mismatched,
        metadata={
            "mismatched_sensors": len(mismatched),
            "first_mismatches": dg.MetadataValue.json(mismatched[:20]),
        },
    )


@dg.asset_check(
    asset=READINGS,
    partitions_def=building_month_partitions,
    description="Present vs expected minutes per sensor, with gap segments.",
)
def coverage(
    context: dg.AssetCheckExecutionContext, database: PostgresResource
) -> dg.AssetCheckResult:
    with database.connection() as conn:
        building, month = _building_month(context, conn)
        sensors = quality.coverage(conn, month, building)
        ids, shares = quality.daily_minutes(conn, month, building)
    present = sum(s.present for s in sensors)
    expected = sum(s.expected for s in sensors)
    worst = sorted(sensors, key=lambda s: s.completeness)[:15]
    table = "\n".join(
        [
            "| sensor | present | expected | completeness | gaps | longest gap (min) |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        + [
            f"| {s.sensor_id} | {s.present} | {s.expected} | {s.completeness:.2%} | {s.gaps} "
            f"| {s.longest_gap_minutes} |"
            for s in worst
        ]
    )
    low = [s.sensor_id for s in sensors if s.completeness < _COMPLETENESS_WARNING]
    return dg.AssetCheckResult(
        passed=not low,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "completeness": round(present / expected, 6) if expected else 0.0,
            "gap_segments": sum(s.gaps for s in sensors),
            "sensors_below_90pct": len(low),
            "least_complete_sensors": dg.MetadataValue.md(table),
            "heatmap": dg.MetadataValue.md(
                heatmap.markdown(shares, ids, f"coverage of {month}: sensors x days")
            ),
        },
    )


@dg.asset_check(
    asset=HOURLY,
    partitions_def=building_month_partitions,
    description="Hourly and daily aggregates of sampled sensors equal a "
    "recomputation from the raw month partition.",
)
def aggregates_match_raw(
    context: dg.AssetCheckExecutionContext, database: PostgresResource
) -> dg.AssetCheckResult:
    with database.connection() as conn:
        building, month = _building_month(context, conn)
        mismatches = quality.aggregate_mismatches(conn, month, building=building)
    return dg.AssetCheckResult(
        passed=not mismatches,
        metadata={
            "mismatched_buckets": len(mismatches),
            "first_mismatches": dg.MetadataValue.json([list(m) for m in mismatches[:20]]),
        },
    )


@dg.asset_check(
    asset=READINGS,
    partitions_def=building_month_partitions,
    description="No API role (bangkok_api, its members, PUBLIC; Supabase's anon, authenticated "
    "and service_role where they exist) holds a privilege on any table in schema partitions "
    "(this month's included), on the schema itself or on the load's side tables; anon, "
    "service_role and PUBLIC hold nothing of the pipeline's, authenticated writes nothing; and "
    "Row Level Security is enabled and forced on every API-readable table: a partition queried "
    "directly skips its parent's policies.",
)
def api_roles_cannot_bypass_rls(
    context: dg.AssetCheckExecutionContext, database: PostgresResource
) -> dg.AssetCheckResult:
    with database.connection() as conn:
        building, month = _building_month(context, conn)
        leaks = access.privilege_leaks(conn)
        gaps = access.rls_gaps(conn)
    own = {
        f"partitions.{name}"
        for table in TABLES
        for name in (table.name(month), table.leaf_name(month, building))
    }
    return dg.AssetCheckResult(
        passed=not leaks and not gaps,
        metadata={
            "privileges_found": len(leaks),
            "on_this_month": len([leak for leak in leaks if leak.relation in own]),
            "first_privileges": dg.MetadataValue.json([str(leak) for leak in leaks[:20]]),
            "tables_without_forced_rls": dg.MetadataValue.json(gaps),
        },
    )


ingestion_checks = [reconciliation, coverage, aggregates_match_raw, api_roles_cannot_bypass_rls]
