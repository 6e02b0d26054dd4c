"""Jobs of the operations domain: health checks on demand, partition premake, retention,
compression."""

import dagster as dg

from bangkok_pipeline.core import settings
from bangkok_pipeline.defs.operations.assets import DATABASE
from bangkok_pipeline.defs.operations.checks import database_health
from bangkok_pipeline.defs.resources import PostgresResource
from bangkok_pipeline.warehouse import archive, buildings, compression, maintenance

database_health_job = dg.define_asset_job(
    "database_health",
    selection=dg.AssetSelection.checks(database_health),
    description="Run every database health check now (the health sensor does it periodically).",
)


@dg.op(description="Create the missing partitions of the months after the newest loaded one.")
def premake_partitions(context: dg.OpExecutionContext, database: PostgresResource) -> None:
    with database.connection(autocommit=True) as conn:
        report = maintenance.premake(conn, settings.premake_months())
    context.log.info(report.summary())
    if report.gaps:
        context.log.warning(f"gaps in the loaded range: {', '.join(str(m) for m in report.gaps)}")
    context.log_event(
        dg.AssetObservation(
            asset_key=DATABASE,
            metadata={
                "premake_window": [str(m) for m in report.window],
                "created": report.created,
                "skipped": report.skipped,
                "gaps": [str(m) for m in report.gaps],
            },
        )
    )


@dg.job(
    name="partition_maintenance",
    description="Premake: empty partitions (readings and both aggregates) for the next "
    "BANGKOK_PREMAKE_MONTHS months after the newest loaded month; idempotent; reports gaps.",
)
def partition_maintenance_job() -> None:
    premake_partitions()


@dg.op(
    description="Archive and drop the months the retention policy no longer keeps, for every "
    "building (counted back from its own newest month); one observation per building."
)
def apply_retention(context: dg.OpExecutionContext, database: PostgresResource) -> None:
    raw, aggregates = settings.retain_raw_months(), settings.retain_aggregate_months()
    if raw is None and aggregates is None:
        context.log.info("no retention policy (BANGKOK_RETAIN_RAW_MONTHS unset): nothing to do")
        return
    with database.connection(autocommit=True) as conn:
        for building in buildings.list_buildings(conn):

            def report(line: str, name: str = building.name) -> None:
                context.log.info(f"{name}: {line}")

            plan = archive.apply_retention(
                conn, settings.archive_dir(), raw, aggregates, report, building.building_id
            )
            context.log.info(f"{building.name}: {plan.summary()}")
            context.log_event(
                dg.AssetObservation(
                    asset_key=DATABASE,
                    metadata={
                        "building": building.name,
                        "archived": [str(m) for m in plan.archive],
                        "aggregates_dropped": [str(m) for m in plan.drop_aggregates],
                        "archive_dir": str(settings.archive_dir()),
                    },
                )
            )


@dg.job(
    name="retention",
    description="Archive raw readings older than BANGKOK_RETAIN_RAW_MONTHS to Parquet (verified "
    "before the partition is dropped); drop aggregates older than "
    "BANGKOK_RETAIN_AGGREGATE_MONTHS of archived months. Does nothing without a policy.",
)
def retention_job() -> None:
    apply_retention()


@dg.op(
    description="Compress the months BANGKOK_COMPRESS_AFTER_MONTHS names (all but each "
    "building's newest N with readings), for every building; one observation of "
    "postgres_database per building-month compressed."
)
def apply_compression(context: dg.OpExecutionContext, database: PostgresResource) -> None:
    keep_as_rows = settings.compress_after_months()
    if keep_as_rows is None:
        context.log.info("no compression policy (BANGKOK_COMPRESS_AFTER_MONTHS=off): nothing")
        return
    with database.connection(autocommit=True) as conn:
        every = [(b.building_id, b.name) for b in buildings.list_buildings(conn)]
        cold = {b: compression.cold_months(conn, keep_as_rows, b) for b, _ in every}
        for building, months in cold.items():  # the whole policy, before any change
            compression.check(conn, months, "compressed", building)
        changed = 0
        for building, name in every:
            for month in cold[building]:
                for change in compression.compress(conn, [month], building):
                    changed += 1
                    context.log.info(f"{name}: {change.line()}")
                    context.log_event(
                        dg.AssetObservation(
                            asset_key=DATABASE,
                            metadata={
                                "building": name,
                                "compressed_month": str(change.month),
                                "readings": change.readings,
                                "bytes_before": change.bytes_before,
                                "bytes_after": change.bytes_after,
                                "ratio": round(change.ratio, 2),
                                "seconds": round(change.seconds, 2),
                            },
                        )
                    )
    total = sum(len(months) for months in cold.values())
    context.log.info(
        f"compressed {changed} building-month(s); {total - changed} of the {total} older than "
        f"each building's newest {keep_as_rows} were compressed already"
    )


@dg.job(
    name="compression",
    description="Compress the months older than the newest BANGKOK_COMPRESS_AFTER_MONTHS with "
    "readings (one row per sensor and Bangkok day, checked reading for reading before the swap); "
    "months compressed already are left alone. Does nothing with the policy off.",
)
def compression_job() -> None:
    apply_compression()
