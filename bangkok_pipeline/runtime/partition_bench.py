"""`bangkok-pipeline bench partitions`: how Dagster's UI and backfills cope with assets
partitioned per building × month, the building dimension static or dynamic.

In a temporary DAGSTER_HOME (default SQLite storage, removed afterwards) a generated code
location defines, per variant, three chained assets (`raw_month` → `validated_month` →
`readings_month`, under the key prefix `static` or `dynamic`) partitioned by
`MultiPartitionsDefinition({"building": …, "month": MonthlyPartitionsDefinition(…)})`, the
buildings a `StaticPartitionsDefinition` or a `DynamicPartitionsDefinition` filled on the
instance. Half of every asset's partitions get a runless materialization, in a checkerboard
(building index + month index even), so that no two adjacent months share a status and the
status query cannot fold the months into one range. None of this setup is timed (one SQLite
write per event, some 7 ms each: most of the run's wall time at the default size).

A real `dagster-webserver` then serves that location on a free loopback port, and each
variant is timed over HTTP (one kept-alive connection, as a browser holds), `repeats` times:

- status: the query the UI's asset page sends for a partitioned asset (`PartitionHealthQuery`,
  copied from dagster-webserver 1.13: partition keys per dimension and `assetPartitionStatuses`),
  once per asset per repeat. The first request of an asset also builds Dagster's asset status
  cache, so the max includes that cold request;
- keys: `partitionKeysByDimension` alone, once per asset per repeat;
- backfill: the `launchPartitionBackfill` mutation of all partitions of the three assets, once
  per repeat. No daemon runs, so only the creation of the backfill is timed.

Every answer is checked, untimed: the keys are exactly the buildings × months, the statuses
report exactly the recorded partitions as materialized (none failed or in progress), and every
backfill targets exactly 3 × buildings × months asset-partitions.
"""

import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.runtime import services

DEFAULT_BUILDINGS = 100
DEFAULT_MONTHS = 18
DEFAULT_REPEATS = 10
FIRST_MONTH = "2018-07"  # keys `YYYY-MM` from 00:00 Asia/Bangkok, as the pipeline's own months
ASSETS = ("raw_month", "validated_month", "readings_month")
VARIANTS = ("static", "dynamic")
DYNAMIC_PARTITIONS = "building"
READY_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 300.0

# The UI's query for a partitioned asset's health bar and partition list, as its source
# (ui-core/src/assets/usePartitionHealthData.tsx) has it in dagster-webserver 1.13.
PARTITION_HEALTH_QUERY = """
query PartitionHealthQuery($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      id
      partitionKeysByDimension {
        name
        type
        partitionKeys
      }
      assetPartitionStatuses {
        ...TimeStatuses
        ...DefaultStatuses
        ... on MultiPartitionStatuses {
          primaryDimensionName
          ranges {
            primaryDimStartKey
            primaryDimEndKey
            primaryDimStartTime
            primaryDimEndTime
            secondaryDim {
              ...TimeStatuses
              ...DefaultStatuses
            }
          }
        }
      }
    }
  }
}

fragment TimeStatuses on TimePartitionStatuses {
  ranges {
    status
    startTime
    endTime
    startKey
    endKey
  }
}

fragment DefaultStatuses on DefaultPartitionStatuses {
  materializedPartitions
  materializingPartitions
  failedPartitions
}
"""

PARTITION_KEYS_QUERY = """
query PartitionKeysQuery($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      partitionKeysByDimension {
        name
        partitionKeys
      }
    }
  }
}
"""

LAUNCH_BACKFILL_MUTATION = """
mutation LaunchBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess {
      backfillId
    }
    ... on Error {
      message
    }
  }
}
"""

BACKFILL_QUERY = """
query Backfill($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill {
      status
      assetBackfillData {
        assetBackfillStatuses {
          __typename
          ... on AssetPartitionsStatusCounts {
            assetKey {
              path
            }
            numPartitionsTargeted
          }
        }
      }
    }
    ... on Error {
      message
    }
  }
}
"""

LOCATIONS_QUERY = """
query Locations {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        locationOrLoadError {
          __typename
          ... on PythonError {
            message
          }
        }
      }
    }
    ... on PythonError {
      message
    }
  }
}
"""

DEFINITIONS_TEMPLATE = '''"""Written by `bangkok-pipeline bench partitions`."""

import dagster as dg

BUILDINGS = {buildings!r}
MONTHS = dg.MonthlyPartitionsDefinition(
    start_date={start!r}, end_date={end!r}, timezone="Asia/Bangkok", fmt="%Y-%m"
)


def chain(variant: str, buildings: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    partitions = dg.MultiPartitionsDefinition({{"building": buildings, "month": MONTHS}})

    @dg.asset(key_prefix=variant, group_name=variant, partitions_def=partitions)
    def raw_month() -> None:
        pass

    @dg.asset(key_prefix=variant, group_name=variant, partitions_def=partitions, deps=[raw_month])
    def validated_month() -> None:
        pass

    @dg.asset(
        key_prefix=variant, group_name=variant, partitions_def=partitions, deps=[validated_month]
    )
    def readings_month() -> None:
        pass

    return [raw_month, validated_month, readings_month]


defs = dg.Definitions(
    assets=[
        *chain("static", dg.StaticPartitionsDefinition(BUILDINGS)),
        *chain("dynamic", dg.DynamicPartitionsDefinition(name={dynamic!r})),
    ]
)
'''


class PartitionBenchError(RuntimeError):
    """The benchmark could not run, or Dagster answered something other than expected."""


@dataclass(frozen=True)
class Timing:
    """Wall-clock time of one kind of request, over its repeats, in milliseconds."""

    median_ms: float
    max_ms: float
    samples: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> "Timing":
        return cls(statistics.median(seconds) * 1000, max(seconds) * 1000, len(seconds))


@dataclass(frozen=True)
class VariantResult:
    """One variant's timings, and the counts as the webserver reported them (all checked)."""

    variant: str
    partitions_per_asset: int
    materialized_per_asset: int
    status: Timing
    keys: Timing
    backfill: Timing
    backfill_asset_partitions: int


@dataclass(frozen=True)
class Shape:
    """The partitions of every asset: building names, month keys, and those materialized."""

    buildings: list[str]
    months: list[str]

    @property
    def materialized(self) -> set[tuple[str, str]]:
        """The checkerboard of (building, month) that gets a materialization: about half."""
        return {
            (building, month)
            for b, building in enumerate(self.buildings)
            for m, month in enumerate(self.months)
            if (b + m) % 2 == 0
        }

    @property
    def end(self) -> str:
        """The exclusive end of the monthly partitions: the month after the last."""
        return Month.parse(self.months[-1]).next().key


def shape(buildings: int, months: int) -> Shape:
    """`buildings` names (`building-001`, …) and `months` month keys from FIRST_MONTH."""
    width = max(3, len(str(buildings)))
    names = [f"building-{i:0{width}d}" for i in range(1, buildings + 1)]
    keys, month = [], Month.parse(FIRST_MONTH)
    for _ in range(months):
        keys.append(month.key)
        month = month.next()
    return Shape(names, keys)


def run_partition_bench(
    buildings: int = DEFAULT_BUILDINGS,
    months: int = DEFAULT_MONTHS,
    repeats: int = DEFAULT_REPEATS,
    progress: Callable[[str], None] = lambda line: None,
) -> list[VariantResult]:
    """Set up, serve and time both variants (static, then dynamic); see the module docstring."""
    for name, value in (("buildings", buildings), ("months", months), ("repeats", repeats)):
        if value < 1:
            raise PartitionBenchError(f"--{name} must be at least 1, not {value}")
    layout = shape(buildings, months)
    with tempfile.TemporaryDirectory(prefix="bangkok-partition-bench-") as directory:
        home = Path(directory)
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        code = home / "bench_definitions.py"
        code.write_text(
            DEFINITIONS_TEMPLATE.format(
                buildings=layout.buildings,
                start=FIRST_MONTH,
                end=layout.end,
                dynamic=DYNAMIC_PARTITIONS,
            )
        )
        progress(
            f"{buildings:,} building(s) × {months:,} month(s) from {FIRST_MONTH}: "
            f"{buildings * months:,} partitions per asset, {len(ASSETS)} assets per variant"
        )
        progress(
            f"  recording {len(layout.materialized):,} materializations per asset (setup, "
            "not timed)"
        )
        _record_materializations(home, layout)
        port = services.free_port()
        server = services.Service(
            "dagster-webserver",
            [_webserver(), "-f", str(code), "-d", str(home), "-h", "127.0.0.1", "-p", str(port)],
            home / "webserver.log",
        )
        environment = {**os.environ, "DAGSTER_HOME": str(home)}  # the child's only
        url = f"http://127.0.0.1:{port}"
        progress(f"  starting dagster-webserver on {url}")
        with services.running([server], environment):
            services.wait_until_answering(url, server, timeout=READY_TIMEOUT_S)
            client = _Client(port, server)
            try:
                client.check_location()
                results = []
                for variant in VARIANTS:
                    progress(f"  timing {variant}, {repeats} round(s)")
                    results.append(_measure(client, variant, layout, repeats))
            finally:
                client.close()
        return results


def _webserver() -> str:
    """The `dagster-webserver` beside this interpreter: the venv's, even when not activated."""
    beside = Path(sys.executable).parent / "dagster-webserver"
    found = str(beside) if beside.is_file() else shutil.which("dagster-webserver")
    if not found:
        raise PartitionBenchError(f"dagster-webserver not found beside {sys.executable}")
    return found


def _record_materializations(home: Path, layout: Shape) -> None:
    """The dynamic buildings, and a runless materialization per checkerboard partition."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions(DYNAMIC_PARTITIONS, layout.buildings)
        for variant in VARIANTS:
            for asset in ASSETS:
                for building, month in sorted(layout.materialized):
                    instance.report_runless_asset_event(
                        dg.AssetMaterialization(
                            asset_key=[variant, asset],
                            partition=dg.MultiPartitionKey({"building": building, "month": month}),
                        )
                    )


class _Client:
    """GraphQL over one kept-alive HTTP connection to the webserver."""

    def __init__(self, port: int, server: services.Service) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
        self.server = server

    def close(self) -> None:
        self.connection.close()

    def request(self, query: str, variables: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        """Seconds from sending the request to the last byte of the answer, and its `data`."""
        body = json.dumps({"query": query, "variables": variables}).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        try:
            started = time.perf_counter()
            self.connection.request("POST", "/graphql", body, headers)
            response = self.connection.getresponse()
            raw = response.read()
            elapsed = time.perf_counter() - started
        except (OSError, http.client.HTTPException) as error:
            self.connection.close()
            raise PartitionBenchError(
                f"the webserver did not answer ({error}); last lines of {self.server.log}:\n"
                f"{self.server.tail()}"
            ) from None
        operation = query.split("(")[0].split("{")[0].strip()
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = {}
        if response.status != 200 or payload.get("errors") or "data" not in payload:
            errors = payload.get("errors") or [{"message": raw[:500].decode(errors="replace")}]
            raise PartitionBenchError(
                f"{operation} failed (HTTP {response.status}): {errors[0].get('message')}"
            )
        data: dict[str, Any] = payload["data"]
        return elapsed, data

    def check_location(self) -> None:
        """The generated code location loaded: else its error, not a failing query later."""
        _, data = self.request(LOCATIONS_QUERY, {})
        workspace = data["workspaceOrError"]
        if workspace["__typename"] != "Workspace":
            raise PartitionBenchError(f"the webserver has no workspace: {workspace.get('message')}")
        for entry in workspace["locationEntries"]:
            location = entry["locationOrLoadError"] or {}
            if location.get("__typename") != "RepositoryLocation":
                raise PartitionBenchError(
                    f"code location {entry['name']} did not load: "
                    f"{location.get('message', 'no error given').strip()}"
                )


def _measure(client: _Client, variant: str, layout: Shape, repeats: int) -> VariantResult:
    """Time the status and keys queries per asset, and the backfill of all partitions."""
    keys = [{"path": [variant, asset]} for asset in ASSETS]
    status_s: list[float] = []
    keys_s: list[float] = []
    partitions = materialized = 0
    for _ in range(repeats):
        for key in keys:
            elapsed, data = client.request(PARTITION_HEALTH_QUERY, {"assetKey": key})
            status_s.append(elapsed)
            node = _asset_node(data, key)
            partitions = _check_keys(node, key, layout)
            materialized = _check_statuses(node, key, layout)
            elapsed, data = client.request(PARTITION_KEYS_QUERY, {"assetKey": key})
            keys_s.append(elapsed)
            _check_keys(_asset_node(data, key), key, layout)
    backfill_s: list[float] = []
    targeted = 0
    for _ in range(repeats):
        params = {"assetSelection": keys, "allPartitions": True, "title": f"bench {variant}"}
        elapsed, data = client.request(LAUNCH_BACKFILL_MUTATION, {"params": params})
        backfill_s.append(elapsed)
        launched = data["launchPartitionBackfill"]
        if launched["__typename"] != "LaunchBackfillSuccess" or not launched.get("backfillId"):
            raise PartitionBenchError(
                f"launchPartitionBackfill of {variant} answered {launched['__typename']}: "
                f"{launched.get('message', '')}"
            )
        targeted = _check_backfill(client, launched["backfillId"], variant, layout)
    return VariantResult(
        variant=variant,
        partitions_per_asset=partitions,
        materialized_per_asset=materialized,
        status=Timing.of(status_s),
        keys=Timing.of(keys_s),
        backfill=Timing.of(backfill_s),
        backfill_asset_partitions=targeted,
    )


def _name(key: dict[str, list[str]]) -> str:
    return "/".join(key["path"])


def _asset_node(data: dict[str, Any], key: dict[str, list[str]]) -> dict[str, Any]:
    node: dict[str, Any] = data["assetNodeOrError"]
    if "partitionKeysByDimension" not in node:
        raise PartitionBenchError(f"the webserver does not know the asset {_name(key)}")
    return node


def _check_keys(node: dict[str, Any], key: dict[str, list[str]], layout: Shape) -> int:
    """The asset's partition keys per dimension are exactly the buildings and the months;
    returns their number (buildings × months)."""
    found = {d["name"]: d["partitionKeys"] for d in node["partitionKeysByDimension"]}
    expected = {"building": layout.buildings, "month": layout.months}
    if found != expected:
        counts = {name: len(keys) for name, keys in found.items()}
        raise PartitionBenchError(
            f"{_name(key)} has partition keys {counts}, not {len(layout.buildings)} buildings × "
            f"{len(layout.months)} months"
        )
    return len(found["building"]) * len(found["month"])


def _check_statuses(node: dict[str, Any], key: dict[str, list[str]], layout: Shape) -> int:
    """The statuses name exactly the recorded partitions materialized, none failed or running;
    returns how many are materialized."""
    statuses = node["assetPartitionStatuses"]
    if statuses.get("primaryDimensionName") != "month":
        raise PartitionBenchError(
            f"{_name(key)}: expected multi-partition statuses with the month as primary "
            f"dimension, got {sorted(statuses)}"
        )
    materialized: set[tuple[str, str]] = set()
    others: list[str] = []
    for status_range in statuses["ranges"]:
        first = layout.months.index(status_range["primaryDimStartKey"])
        last = layout.months.index(status_range["primaryDimEndKey"])
        secondary = status_range["secondaryDim"]
        others += secondary["failedPartitions"] + secondary["materializingPartitions"]
        for month in layout.months[first : last + 1]:
            materialized.update((b, month) for b in secondary["materializedPartitions"])
    if others or materialized != layout.materialized:
        raise PartitionBenchError(
            f"{_name(key)}: the status query reports {len(materialized)} partitions materialized "
            f"and {len(others)} failed or in progress, expected exactly the "
            f"{len(layout.materialized)} recorded as materialized"
        )
    return len(materialized)


def _check_backfill(client: _Client, backfill_id: str, variant: str, layout: Shape) -> int:
    """The backfill targets every partition of the three assets; returns how many in all."""
    _, data = client.request(BACKFILL_QUERY, {"backfillId": backfill_id})
    backfill = data["partitionBackfillOrError"]
    if backfill["__typename"] != "PartitionBackfill" or not backfill["assetBackfillData"]:
        raise PartitionBenchError(
            f"backfill {backfill_id} is not an asset backfill: {backfill.get('message', '')}"
        )
    targeted = {
        "/".join(s["assetKey"]["path"]): s["numPartitionsTargeted"]
        for s in backfill["assetBackfillData"]["assetBackfillStatuses"]
        if s["__typename"] == "AssetPartitionsStatusCounts"
    }
    per_asset = len(layout.buildings) * len(layout.months)
    expected = {f"{variant}/{asset}": per_asset for asset in ASSETS}
    if targeted != expected:
        raise PartitionBenchError(
            f"backfill {backfill_id} targets {targeted}, expected {per_asset:,} partitions "
            f"of each of {', '.join(expected)}"
        )
    return sum(targeted.values())


def report(results: Sequence[VariantResult]) -> str:
    """The variants side by side; times in ms as median / max over the repeats."""
    rows = [
        (
            "variant",
            "partitions/asset",
            "materialized/asset",
            "status ms (median/max)",
            "keys ms (median/max)",
            "backfill ms (median/max)",
            "asset-partitions in backfill",
        )
    ]
    rows += [
        (
            r.variant,
            f"{r.partitions_per_asset:,}",
            f"{r.materialized_per_asset:,}",
            f"{r.status.median_ms:.1f} / {r.status.max_ms:.1f}",
            f"{r.keys.median_ms:.1f} / {r.keys.max_ms:.1f}",
            f"{r.backfill.median_ms:.1f} / {r.backfill.max_ms:.1f}",
            f"{r.backfill_asset_partitions:,}",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )
