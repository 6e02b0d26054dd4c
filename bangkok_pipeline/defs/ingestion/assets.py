"""Ingestion assets partitioned by building and month: raw CSV layer -> validated readings ->
PostgreSQL.

Grain of every asset: one Bangkok calendar month of one building's CU-BEMS-format files. The work
itself lives in `bangkok_pipeline.warehouse.ingest`; these definitions add partitions, resources
and metadata.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import dagster as dg

from bangkok_pipeline.core import settings
from bangkok_pipeline.core.months import Month
from bangkok_pipeline.core.object_store import ObjectStoreError
from bangkok_pipeline.core.settings import BANGKOK_TZ
from bangkok_pipeline.defs import OWNERS
from bangkok_pipeline.defs.ingestion.partitions import (
    building_month,
    building_month_partitions,
    month_backfill_policy,
    registered_building,
)
from bangkok_pipeline.defs.ingestion.resources import DATABASE_RETRY_POLICY
from bangkok_pipeline.defs.resources import LayersResource, PostgresResource, SourceDirectory
from bangkok_pipeline.transform.layers import LayerMissing, RunLayers
from bangkok_pipeline.warehouse import buildings
from bangkok_pipeline.warehouse.ingest import (
    IngestError,
    extract_raw_month,
    load_month,
    validate_month,
    validated_summary,
)
from bangkok_pipeline.warehouse.load import ReconciliationError, ShrinkError, ShrinkGuard

# The columns of the long readings, as validated and as stored (`sensor_readings`).
READINGS_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("ts", "timestamptz", description="the minute, Asia/Bangkok"),
        dg.TableColumn("sensor_id", "integer", description="sensors.sensor_id"),
        dg.TableColumn("value", "real", description="in the sensor's unit (sensors.unit)"),
    ]
)

RAW = dg.AssetKey("raw_readings")
VALIDATED = dg.AssetKey("validated_readings")
READINGS = dg.AssetKey("sensor_readings")
HOURLY = dg.AssetKey("hourly_aggregates")
DAILY = dg.AssetKey("daily_aggregates")


class ValidationConfig(dg.Config):
    """Thresholds of the validated layer."""

    max_rejected_share: float = 0.02  # of non-empty cells; above it the month is not loaded
    min_floor_completeness: float = 0.5  # below it the floor's completeness check warns
    max_silence_hours: float = 2.0  # newest reading this much before month end (or now): warn


class LoadConfig(dg.Config):
    """Guards of the database step."""

    allow_shrink: bool = False  # let a reload remove more of a floor than BANGKOK_MAX_SHRINK_SHARE


def _building(context: dg.AssetExecutionContext, database: PostgresResource) -> buildings.Building:
    """The building whose month the partition names, as registered."""
    with database.connection() as conn:
        return registered_building(conn, context.partition_key)[0]


@contextmanager
def _run_layers(
    context: dg.AssetExecutionContext,
    layers: LayersResource,
    building: int,
    upstream: dg.AssetKey | None = None,
) -> Iterator[RunLayers]:
    """This run's layers of the building-month; a re-execution also reads the layers of its
    parents, and a run that does not materialize `upstream` at all reads the published layer."""
    lineage: list[str] = []
    parent = context.run.parent_run_id
    while parent:
        lineage.append(parent)
        run = context.instance.get_run_by_id(parent)
        parent = run.parent_run_id if run else None
    selection = context.run.asset_selection
    alone = upstream is not None and not lineage and selection is not None
    with layers.for_step(
        building_month(context.partition_key).month,
        context.run.run_id,
        tuple(lineage),
        published_fallback=alone and upstream not in (selection or ()),
        building=building,
    ) as run:
        yield run


def _is_live(instance: dg.DagsterInstance) -> Callable[[str], bool]:
    """Whether a run (by id) may still be going: its layers must not be removed under it.
    A run this instance does not know (another instance on the same BANGKOK_HOME) counts."""

    def live(run_id: str) -> bool:
        run = instance.get_run_by_id(run_id)
        return run is None or not run.is_finished

    return live


def _bounds(first_ts: str | None, last_ts: str | None) -> dict[str, dg.MetadataValue]:
    """The month's first and last reading as timestamps (the UI shows them in its time zone; its
    metadata plots draw int and float entries only); a month without readings has none."""
    if not first_ts or not last_ts:
        return {}
    return {
        "first_ts": dg.MetadataValue.timestamp(datetime.fromisoformat(first_ts)),
        "last_ts": dg.MetadataValue.timestamp(datetime.fromisoformat(last_ts)),
    }


def _data_reaches_month_end(
    month: Month, last_ts: str | None, max_silence_hours: float
) -> dg.AssetCheckResult:
    """Warn when a month's readings stop before its end (or, for the month under way, before
    now): the data stopped arriving."""
    _, month_end = month.bounds
    horizon = min(month_end, datetime.now(BANGKOK_TZ))
    last = datetime.fromisoformat(last_ts) if last_ts else None
    silence_hours = (horizon - last).total_seconds() / 3600 if last else float("inf")
    return dg.AssetCheckResult(
        check_name="data_reaches_month_end",
        passed=silence_hours <= max_silence_hours,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=(
            {
                "last_reading": dg.MetadataValue.timestamp(last),
                "hours_without_data": round(silence_hours, 2),
            }
            if last
            else {"last_reading": dg.MetadataValue.text("no reading")}
        ),
    )


@dg.asset(
    key=RAW,
    partitions_def=building_month_partitions,
    backfill_policy=month_backfill_policy,
    group_name="raw",
    retry_policy=DATABASE_RETRY_POLICY,
    kinds={"csv", "parquet"},
    owners=OWNERS,
    description="Every line of the month from each {year}Floor{n}.csv, kept losslessly as text "
    "in Parquet under the layers root (default BANGKOK_HOME/layers); header columns registered "
    "as sensors.",
)
def raw_readings(
    context: dg.AssetExecutionContext,
    database: PostgresResource,
    source: SourceDirectory,
    layers: LayersResource,
) -> dg.MaterializeResult:
    building = _building(context, database)
    folder = buildings.source_folder(building, source.directory())
    try:
        with (
            database.connection(autocommit=True) as conn,
            _run_layers(context, layers, building.building_id) as run,
        ):
            raw = extract_raw_month(conn, folder, run, building=building.name)
    except IngestError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None
    except OSError as error:  # writing the layer (a full disk): retrying at once will not help
        where = f": {error.filename}" if error.filename else ""
        raise dg.Failure(
            description=f"{error.strerror or error}{where}", allow_retries=False
        ) from None
    for warning in raw.skipped + raw.without_lines + raw.waiting:
        context.log.warning(warning)
    unknown = {f["file"]: f["unknown_columns"] for f in raw.files if f["unknown_columns"]}
    for name, columns in unknown.items():
        context.log.warning(
            f"{name}: columns not in the CU-BEMS naming pattern, kept in the raw "
            f"layer only: {columns}"
        )
    return dg.MaterializeResult(
        metadata={
            "files": len(raw.files),
            "lines": raw.lines,
            "dagster/row_count": raw.lines,
            "source_fingerprints": dg.MetadataValue.json(
                {str(f["file"]): f["fingerprint"] for f in raw.files}
            ),
            "unknown_columns": dg.MetadataValue.json(unknown),
            "skipped_files": dg.MetadataValue.json(raw.skipped),
            # files of the month's year without a line of it: their floors count as 0 % complete
            "files_without_lines": dg.MetadataValue.json(raw.without_lines),
            "waiting_for_partition": dg.MetadataValue.json(raw.waiting),
            "sensors_in_headers": sum(len(f["sensor_ids"]) for f in raw.files),
        }
    )


@dg.asset(
    key=VALIDATED,
    deps=[RAW],
    partitions_def=building_month_partitions,
    backfill_policy=month_backfill_policy,
    group_name="validated",
    kinds={"polars", "pandera", "parquet"},
    owners=OWNERS,
    metadata={"dagster/column_schema": READINGS_SCHEMA},
    check_specs=[
        dg.AssetCheckSpec(
            "quarantine_share_under_threshold",
            asset=VALIDATED,
            blocking=True,
            description="Cells set aside are at most max_rejected_share of the non-empty ones; "
            "otherwise the month is not loaded (its previous data stays).",
        ),
        dg.AssetCheckSpec(
            "completeness_per_floor",
            asset=VALIDATED,
            description="Each floor has at least min_floor_completeness of its expected "
            "minutes x sensors (warns).",
        ),
        dg.AssetCheckSpec(
            "data_reaches_month_end",
            asset=VALIDATED,
            description="The newest reading is at most max_silence_hours before the month's end, "
            "or before now for the month under way (warns).",
        ),
    ],
    description="Long readings (ts, sensor_id, value) that pass ReadingModel; the rest set "
    "aside with file, line, column and reason.",
)
def validated_readings(
    context: dg.AssetExecutionContext,
    config: ValidationConfig,
    database: PostgresResource,
    layers: LayersResource,
) -> dg.MaterializeResult:
    building = _building(context, database)
    month = building_month(context.partition_key).month
    try:
        with _run_layers(context, layers, building.building_id, RAW) as run:
            result = validate_month(run)
    except (LayerMissing, ObjectStoreError) as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None
    share_ok = result.rejected_share <= config.max_rejected_share
    summary = (
        f"{month}: {result.quarantined:,} of {result.readings + result.quarantined:,} cells "
        f"rejected ({result.rejected_share:.2%}, threshold {config.max_rejected_share:.2%}); "
        f"by reason {result.quarantine_by_reason}"
    )
    if not share_ok:  # the failed blocking check below stops the run before the load
        context.log.error(f"not loading {summary}")
    low_floors = {
        f: c for f, c in result.completeness_by_floor.items() if c < config.min_floor_completeness
    }
    return dg.MaterializeResult(
        metadata={
            "rows_read": result.rows_read,
            "readings": result.readings,
            "dagster/row_count": result.readings,
            "quarantined": result.quarantined,
            "empty_cells": result.empty_cells,
            "identical_duplicate_lines": result.identical_duplicate_lines,
            "distinct_sensors": result.sensors,
            **_bounds(result.first_ts, result.last_ts),
            "completeness": round(result.completeness, 6),
            "quarantine_by_reason": dg.MetadataValue.json(result.quarantine_by_reason),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="quarantine_share_under_threshold",
                passed=share_ok,
                description=None if share_ok else f"not loading {summary}",
                metadata={"rejected_share": result.rejected_share, "summary": summary},
            ),
            _data_reaches_month_end(month, result.last_ts, config.max_silence_hours),
            dg.AssetCheckResult(
                check_name="completeness_per_floor",
                passed=not low_floors,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "completeness_by_floor": dg.MetadataValue.json(result.completeness_by_floor),
                    "below_threshold": dg.MetadataValue.json(low_floors),
                },
            ),
        ],
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            READINGS,
            # The nightly schedule reloads the latest month every night: two missed nights mean
            # data stopped flowing (the source, the daemon or the database).
            freshness_policy=dg.FreshnessPolicy.time_window(
                fail_window=timedelta(hours=50), warn_window=timedelta(hours=26)
            ),
            deps=[VALIDATED],
            kinds={"postgres"},
            owners=OWNERS,
            metadata={"dagster/column_schema": READINGS_SCHEMA},
            description="sensor_readings: one attached partition per building and month.",
        ),
        dg.AssetSpec(
            HOURLY,
            deps=[READINGS],
            kinds={"postgres"},
            owners=OWNERS,
            description="hourly_aggregates: per sensor and hour, swapped with the month.",
        ),
        dg.AssetSpec(
            DAILY,
            deps=[HOURLY],
            kinds={"postgres"},
            owners=OWNERS,
            description="daily_aggregates: per sensor and Bangkok day, from the hourly.",
        ),
    ],
    partitions_def=building_month_partitions,
    backfill_policy=month_backfill_policy,
    group_name="warehouse",
    name="load_month",
    retry_policy=DATABASE_RETRY_POLICY,
    pool="bangkok_database",
)
def load_month_partitions(
    context: dg.AssetExecutionContext,
    config: LoadConfig,
    database: PostgresResource,
    layers: LayersResource,
) -> Iterator[dg.MaterializeResult]:
    """COPY the validated building-month in and swap it with its aggregates."""
    month = str(building_month(context.partition_key).month)
    building = _building(context, database)
    shrink = ShrinkGuard(settings.max_shrink_share(), config.allow_shrink)
    try:
        with (
            _run_layers(context, layers, building.building_id, VALIDATED) as run,
            database.connection(autocommit=True) as conn,
        ):
            summary = validated_summary(run.read_dir("validated"))
            result = load_month(
                conn,
                run,
                _is_live(context.instance),
                shrink,
                on_wait=context.log.warning,
                keep_as_rows=settings.compress_after_months(),
            )
    except (LayerMissing, ObjectStoreError, ReconciliationError, ShrinkError) as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None
    seconds = result.timings["total"]
    expected = summary["expected_readings"]
    yield dg.MaterializeResult(
        asset_key=READINGS,
        metadata={
            "rows_read": summary["rows_read"],
            "rows_loaded": result.rows_loaded,
            "dagster/row_count": result.rows_loaded,
            "rows_quarantined": summary["quarantined"],
            **_bounds(summary["first_ts"], summary["last_ts"]),
            "completeness": round(result.rows_loaded / expected, 6) if expected else 0.0,
            "source_fingerprints": dg.MetadataValue.json(summary["sources"]),
            "distinct_sensors": result.sensors,
            "tier": "compressed" if result.compressed else "rows",
            "partition_bytes": result.partition_bytes,
            "partition_size": dg.MetadataValue.text(f"{result.partition_bytes / 2**20:.1f} MiB"),
            "duration_s": seconds,
            "rows_per_second": round(result.rows_loaded / seconds) if seconds else 0,
            "timings": dg.MetadataValue.json(result.timings),
        },
    )
    yield dg.MaterializeResult(asset_key=HOURLY, metadata={"refreshed_month": month})
    yield dg.MaterializeResult(asset_key=DAILY, metadata={"refreshed_month": month})
