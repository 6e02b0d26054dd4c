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

With a layers URL (`BANGKOK_LAYERS_URL`, e.g. `s3://bucket/prefix`), steps share no disk: each
step works in a scratch folder of its own (removed when it ends; one left by a step that died is
removed by the next step on the same host), uploads the layer it writes to
`<url>/runs/<month>/<run_id>/<layer>/` (whole or not at all: `core.object_store`) and downloads
the layers it reads. Publishing writes `<url>/published/<month>/<layer>`, a pointer naming the
run whose prefix holds the month's current layer; prefixes no pointer names are removed with the
month's finished runs. The source cache stays on the step's machine (`BANGKOK_HOME`).

Buildings after the first (CU-BEMS) keep their months apart under `<month>-b<building>` wherever
the first's use `<month>`.
"""

import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import psutil
import pyarrow.parquet as pq

from bangkok_pipeline.core import settings
from bangkok_pipeline.core.files import replace_dir, replacing_dir
from bangkok_pipeline.core.months import Month
from bangkok_pipeline.core.object_store import ObjectStore
from bangkok_pipeline.source.layout import BUILDING_ID

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

    root: Path  # BANGKOK_HOME/layers; with `store`, this step's scratch folder
    month: Month
    run_id: str
    lineage: tuple[str, ...] = ()
    published_fallback: bool = False
    store: ObjectStore | None = None  # where layers are handed over, if not under `root`
    cache: Path | None = None  # the source cache, if not under `root`
    building: int = BUILDING_ID  # whose month: its sensors' ids, its partitions (warehouse)

    @property
    def unit(self) -> str:
        """The building-month's path segment: `2019-02`, or `2019-02-b2` for building 2."""
        key = self.month.key
        return key if self.building == BUILDING_ID else f"{key}-b{self.building}"

    def _run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / self.unit / run_id

    def _key(self, run_id: str, layer: str) -> str:
        return f"runs/{self.unit}/{run_id}/{layer}"

    def _pointer(self, layer: str) -> str:
        return f"published/{self.unit}/{layer}"

    @property
    def source_cache(self) -> Path:
        """Where year files are kept split by month (`source.cache`), beside the layers."""
        return self.cache or self.root / "source-cache"

    def write_dir(self, layer: str) -> Path:
        return self._run_dir(self.run_id) / layer

    @contextmanager
    def writing(self, layer: str) -> Iterator[Path]:
        """An empty folder for this run's `layer`; when the block succeeds it becomes the layer
        (and, with a store, is uploaded whole)."""
        with replacing_dir(self.write_dir(layer)) as folder:
            yield folder
        if self.store is not None:
            self.store.upload(self.write_dir(layer), self._key(self.run_id, layer))

    def read_dir(self, layer: str) -> Path:
        """This run's layer, else the nearest re-executed run's, else (with `published_fallback`)
        a snapshot of the published one. Raises `LayerMissing` naming the step to materialize."""
        owner = self._owner(layer)
        if owner is not None:
            local = self._run_dir(owner) / layer
            if local.is_dir() or self.store is None:
                return local
            return self.store.download(self._key(owner, layer), local)
        if self.published_fallback:
            if self.store is not None:
                published = self.store.read_text(self._pointer(layer))
                if published and self.store.complete(self._key(published, layer)):
                    return self.store.download(self._key(published, layer), self.write_dir(layer))
            elif (self.root / layer / self.unit).is_dir():
                return self._snapshot(layer, self.root / layer / self.unit)
        upstream = "raw_readings" if layer == "raw" else "validated_readings"
        raise LayerMissing(
            f"no {layer} layer of {self.month} for run {self.run_id}"
            + (f" or the runs it re-executes ({', '.join(self.lineage)})" if self.lineage else "")
            + f": materialize {upstream} for {self.month} in the same run (job ingest_month)"
        )

    def _owner(self, layer: str, uploaded: bool = False) -> str | None:
        """The run, of this one and those it re-executes, whose `layer` this run reads (with
        `uploaded`, only one whose layer is in the store)."""
        for run_id in (self.run_id, *self.lineage):
            if not uploaded and (self._run_dir(run_id) / layer).is_dir():
                return run_id
            if self.store is not None and self.store.complete(self._key(run_id, layer)):
                return run_id
        return None

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
        if self.store is not None:
            self._publish_to_store(self.store, is_live)
            return
        for layer in LAYERS:
            try:
                source = self.read_dir(layer)
            except LayerMissing:
                continue
            replace_dir(self.root / layer / self.unit, source)
        month_runs = self.root / "runs" / self.unit
        for folder in month_runs.iterdir() if month_runs.is_dir() else ():
            if folder.name == self.run_id or not is_live(folder.name):
                shutil.rmtree(folder, ignore_errors=True)

    def _publish_to_store(self, store: ObjectStore, is_live: Callable[[str], bool]) -> None:
        """Point each layer at the run that uploaded it (a layer read from the published one,
        `published_fallback`, keeps its pointer), then remove the prefixes no pointer names."""
        published = set()
        for layer in LAYERS:
            owner = self._owner(layer, uploaded=True)
            if owner is not None:
                store.write_text(self._pointer(layer), owner)
            current = store.read_text(self._pointer(layer))
            if current:
                published.add(current)
        for run_id in store.children(f"runs/{self.unit}"):
            if run_id not in published and (run_id == self.run_id or not is_live(run_id)):
                store.remove(f"runs/{self.unit}/{run_id}")


def run_layers(
    month: Month,
    run_id: str,
    lineage: tuple[str, ...] = (),
    home: Path | None = None,
    published_fallback: bool = False,
    root: Path | None = None,
    building: int = BUILDING_ID,
) -> RunLayers:
    """The layers of one run of `building`'s `month` under `root` (default: `home`/layers, `home`
    defaulting to BANGKOK_HOME)."""
    return RunLayers(
        root or layers_root(home), month, run_id, lineage, published_fallback, building=building
    )


@contextmanager
def step_layers(
    month: Month,
    run_id: str,
    lineage: tuple[str, ...] = (),
    published_fallback: bool = False,
    root: Path | None = None,
    url: str | None = None,
    building: int = BUILDING_ID,
) -> Iterator[RunLayers]:
    """The layers one step of a run of `building`'s `month` uses: under `root` (default
    BANGKOK_HOME/layers), or, with `url`, handed over through object storage from a scratch
    folder removed when the step ends."""
    if not url:
        yield run_layers(
            month,
            run_id,
            lineage,
            published_fallback=published_fallback,
            root=root,
            building=building,
        )
        return
    store = ObjectStore(url)
    _sweep_scratch()
    with tempfile.TemporaryDirectory(prefix=f"{_scratch_prefix()}{os.getpid()}-") as scratch:
        yield RunLayers(
            Path(scratch),
            month,
            run_id,
            lineage,
            published_fallback,
            store=store,
            cache=layers_root() / "source-cache",
            building=building,
        )


def _scratch_prefix() -> str:
    return f"bangkok-step-{socket.gethostname()}-"


def _sweep_scratch() -> None:
    """Remove the scratch folders that steps of this machine left when they died (SIGKILL, out
    of memory): their process no longer exists. Folders of other hosts sharing the temporary
    directory are left alone."""
    prefix = _scratch_prefix()
    for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        pid = folder.name.removeprefix(prefix).split("-", 1)[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


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
