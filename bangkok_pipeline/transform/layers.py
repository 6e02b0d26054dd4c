"""Where the file layers of a month live under BANGKOK_HOME, per run, written atomically.

Each run of a month writes its own layers, `layers/runs/<month>/<run_id>/{raw,validated}/`, and
its later steps read only those (or, for a re-execution, its parent runs'), so two runs of one
month never read each other's files. When a run's load has been swapped into the database, its
layers are published as the month's current ones, `layers/{raw,validated}/<month>/`, and the
private folders of finished runs of the month are removed.

`raw`: one Parquet per source file (every line, every column, as text) and `manifest.json`
(headers, sensors, fingerprints). `validated`: `readings.parquet` (ts, sensor_id, value sorted by
sensor and time), `quarantine.parquet`, `fingerprints.parquet`, `coverage.parquet`,
`gaps.parquet` and `summary.json`. A layer is replaced whole: written to a temporary folder and
renamed. Folders are created private (0700).
"""

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from bangkok_pipeline.core import settings
from bangkok_pipeline.core.files import replace_dir, replacing_dir
from bangkok_pipeline.core.months import Month

LAYERS = ("raw", "validated")


class LayerMissing(FileNotFoundError):
    """A step found no layer of its own run (nor of the runs it re-executes)."""


def layers_root(home: Path | None = None) -> Path:
    return (home or settings.bangkok_home()) / "layers"


def layer_dir(layer: str, month: Month, home: Path | None = None) -> Path:
    """The month's published layer: what the last successful load of the month read."""
    return layers_root(home) / layer / month.key


@dataclass(frozen=True)
class RunLayers:
    """The layers one run of one month writes and reads.

    `lineage` holds the runs this one re-executes, nearest first: a step that this run does not
    execute left its layer in one of them. Only a run that does not execute the upstream step at
    all (an asset materialized on its own: `published_fallback`) reads a snapshot of the month's
    published layer instead.
    """

    root: Path  # BANGKOK_HOME/layers
    month: Month
    run_id: str
    lineage: tuple[str, ...] = ()
    published_fallback: bool = False

    def _run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / self.month.key / run_id

    @property
    def source_cache(self) -> Path:
        """Where year files are kept split by month (`source.cache`), beside the layers."""
        return self.root / "source-cache"

    def write_dir(self, layer: str) -> Path:
        return self._run_dir(self.run_id) / layer

    def read_dir(self, layer: str) -> Path:
        """This run's layer, else the nearest re-executed run's, else (with `published_fallback`)
        a snapshot of the published one. Raises `LayerMissing` naming the step to materialize."""
        for run_id in (self.run_id, *self.lineage):
            candidate = self._run_dir(run_id) / layer
            if candidate.is_dir():
                return candidate
        published = self.root / layer / self.month.key
        if self.published_fallback and published.is_dir():
            return self._snapshot(layer, published)
        upstream = "raw_readings" if layer == "raw" else "validated_readings"
        raise LayerMissing(
            f"no {layer} layer of {self.month} for run {self.run_id}"
            + (f" or the runs it re-executes ({', '.join(self.lineage)})" if self.lineage else "")
            + f": materialize {upstream} for {self.month} in the same run (job ingest_month)"
        )

    def _snapshot(self, layer: str, published: Path) -> Path:
        """Hard links to the published layer's files: a publish that replaces it meanwhile
        cannot change what this run reads."""
        with replacing_dir(self.write_dir(layer)) as scratch:
            for path in published.iterdir():
                os.link(path, scratch / path.name)
        return self.write_dir(layer)

    def publish(self, is_live: Callable[[str], bool] = lambda run_id: True) -> None:
        """Make this run's layers the month's current ones (call once its load is swapped in,
        under the month lock), then remove this run's folder and those of the month's runs that
        are not live (by default every other run counts as live)."""
        for layer in LAYERS:
            try:
                source = self.read_dir(layer)
            except LayerMissing:
                continue
            replace_dir(self.root / layer / self.month.key, source)
        month_runs = self.root / "runs" / self.month.key
        for folder in month_runs.iterdir() if month_runs.is_dir() else ():
            if folder.name == self.run_id or not is_live(folder.name):
                shutil.rmtree(folder, ignore_errors=True)


def run_layers(
    month: Month,
    run_id: str,
    lineage: tuple[str, ...] = (),
    home: Path | None = None,
    published_fallback: bool = False,
    root: Path | None = None,
) -> RunLayers:
    """The layers of one run of `month` under `root` (default: `home`/layers, `home` defaulting
    to BANGKOK_HOME)."""
    return RunLayers(root or layers_root(home), month, run_id, lineage, published_fallback)


def parquet_batches(path: Path, rows: int = 1_000_000) -> Iterator[pl.DataFrame]:
    """A layer's Parquet file as frames of at most `rows` rows, never the whole file at once."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        yield frame


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))


def read_json(path: Path) -> Any:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: materialize the upstream asset first")
    return json.loads(path.read_text())
