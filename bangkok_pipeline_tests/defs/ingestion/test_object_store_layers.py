"""File layers handed over through object storage, on a real S3 API served on loopback (moto).

A month run by Dagster's multiprocess executor, each step in a process of its own with its own
scratch folder and only the bucket and PostgreSQL in common, gives the same database as the local
layers; the object store going away fails the step with one line and leaves the month as it was.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.core.object_store import ObjectStore
from bangkok_pipeline.definitions import defs
from bangkok_pipeline.defs.ingestion.assets import (
    load_month_partitions,
    raw_readings,
    validated_readings,
)
from bangkok_pipeline.defs.ingestion.partitions import (
    add_building_partitions,
    building_month_partitions,
)
from bangkok_pipeline.defs.resources import LayersResource, PostgresResource, SourceDirectory
from bangkok_pipeline.source.layout import BUILDING
from bangkok_pipeline.transform.layers import LayerMissing, step_layers
from bangkok_pipeline_tests.conftest import (
    building_instance,
    cubems,
    load_directly,
    new_database,
    readings_and_quarantine,
)
from bangkok_pipeline_tests.s3_server import S3Server

pytestmark = pytest.mark.integration

MONTH = "2019-02"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    server = S3Server().start()
    yield server
    server.stop()


def _use(server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the AWS variables at `server`; a new bucket's URL with a prefix."""
    for name, value in server.env.items():
        monkeypatch.setenv(name, value)
    return server.bucket(f"layers-{uuid.uuid4().hex[:8]}") + "/bangkok"


def test_a_folder_is_whole_or_absent(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    store = ObjectStore(_use(s3, monkeypatch))
    folder = tmp_path / "layer"
    folder.mkdir()
    (folder / "readings.parquet").write_bytes(b"\x00parquet")
    (folder / "summary.json").write_text("{}")
    assert not store.complete("runs/a/raw")
    store.upload(folder, "runs/a/raw")
    assert store.complete("runs/a/raw")
    copy = store.download("runs/a/raw", tmp_path / "copy")
    assert sorted(p.name for p in copy.iterdir()) == ["readings.parquet", "summary.json"]
    assert (copy / "readings.parquet").read_bytes() == b"\x00parquet"
    (folder / "readings.parquet").unlink()
    store.upload(folder, "runs/a/raw")  # a retry: nothing of the earlier attempt stays
    assert store.children("runs/a/raw") == ["_COMPLETE", "summary.json"]
    store.fs.pipe_file(f"{store.base}/runs/b/raw/readings.parquet", b"half")  # a writer died
    assert not store.complete("runs/b/raw")
    assert store.children("runs") == ["a", "b"]
    store.write_text("published/2019-02/raw", "a")
    assert store.read_text("published/2019-02/raw") == "a"
    assert store.read_text("published/2019-02/validated") is None
    store.remove("runs/a")
    assert not store.complete("runs/a/raw") and store.children("runs") == ["b"]


def ingest_month() -> dg.JobDefinition:
    """The product's job, rebuilt in every step process (`dg.reconstructable`)."""
    return defs.resolve_job_def("ingest_month")


def _resources(database_url: str, source: Path, layers_url: str) -> dict[str, Any]:
    return {
        "database": {"config": {"database_url": database_url}},
        "source": {"config": {"path": str(source)}},
        "layers": {"config": {"url": layers_url}},
    }


def test_a_month_loads_exactly_with_steps_that_share_no_disk(
    s3: S3Server,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    server_url: str,
    tiny_source: Path,
) -> None:
    layers_url = _use(s3, monkeypatch)
    home, scratch, dagster_home = tmp_path / "home", tmp_path / "scratch", tmp_path / "dagster"
    scratch.mkdir()
    dagster_home.mkdir()
    monkeypatch.setenv("BANGKOK_HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(scratch))  # where each step makes its scratch folder
    with (
        new_database(server_url, migrate=True) as url,
        new_database(server_url, migrate=True) as local_url,
        dg.instance_for_test(temp_dir=str(dagster_home)) as instance,
    ):
        add_building_partitions(instance, [BUILDING])
        result = dg.execute_job(
            dg.reconstructable(ingest_month),
            instance,
            run_config={"resources": _resources(url, tiny_source, layers_url)},
            tags=building_month_partitions.get_tags_for_partition_key(cubems(MONTH)),
        )
        assert result.success
        starts = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START]
        assert {"raw_readings", "validated_readings", "load_month"} <= {e.step_key for e in starts}
        pids = {e.pid for e in starts}
        assert len(pids) == len(starts) and os.getpid() not in pids  # a process per step
        load_directly(local_url, tiny_source, MONTH, tmp_path / "local-home")
        readings, quarantine = readings_and_quarantine(url)
        assert readings and (readings, quarantine) == readings_and_quarantine(local_url)

    assert not list(scratch.glob("bangkok-step-*"))  # every step's scratch removed
    assert sorted(p.name for p in (home / "layers").iterdir()) == ["source-cache"]
    store = ObjectStore(layers_url)
    run_id = result.run_id
    assert store.children(f"runs/{MONTH}") == [run_id]
    assert store.read_text(f"published/{MONTH}/raw") == run_id
    assert store.read_text(f"published/{MONTH}/validated") == run_id
    assert store.complete(f"runs/{MONTH}/{run_id}/validated")


def _materialize(database_url: str, source: Path, layers_url: str) -> dg.ExecuteInProcessResult:
    with building_instance() as instance:
        return dg.materialize(
            [raw_readings, validated_readings, load_month_partitions],
            partition_key=cubems(MONTH),
            resources={
                "database": PostgresResource(database_url=database_url),
                "source": SourceDirectory(path=str(source)),
                "layers": LayersResource(url=layers_url),
            },
            instance=instance,
            raise_on_error=False,
        )


def test_the_object_store_going_away_fails_in_one_line_and_keeps_the_month(
    monkeypatch: pytest.MonkeyPatch, bangkok_home: Path, server_url: str, tiny_source: Path
) -> None:
    server = S3Server().start()
    try:
        layers_url = _use(server, monkeypatch)
        with new_database(server_url, migrate=True) as url:
            assert _materialize(url, tiny_source, layers_url).success
            before = readings_and_quarantine(url)
            server.stop()
            result = _materialize(url, tiny_source, layers_url)
            assert not result.success
            failures = [e for e in result.all_events if e.is_step_failure]
            assert [e.step_key for e in failures] == ["raw_readings"]
            data = failures[0].step_failure_data
            assert data is not None and data.user_failure_data is not None
            message = data.user_failure_data.description or ""
            assert message.startswith(f"cannot write {layers_url}/runs/{MONTH}/"), message
            assert "Could not connect to the endpoint URL" in message and "\n" not in message
            assert readings_and_quarantine(url) == before
    finally:
        server.stop()


def test_a_step_sweeps_the_scratch_folders_of_dead_steps_on_its_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGKILLed step cannot remove its scratch folder; the next step on the host does."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    left = tmp_path / f"bangkok-step-{host}-{dead.pid}-abc123"
    alive = tmp_path / f"bangkok-step-{host}-{os.getpid()}-def456"
    elsewhere = tmp_path / f"bangkok-step-other-host-{dead.pid}-ghi789"
    for folder in (left, alive, elsewhere):
        (folder / "runs").mkdir(parents=True)
    with step_layers(Month.parse(MONTH), "run", url="memory://bangkok-sweep") as layers:
        assert layers.root.parent == tmp_path and layers.root.exists()
    assert not left.exists() and alive.exists() and elsewhere.exists()
    assert sorted(tmp_path.iterdir()) == sorted([alive, elsewhere])  # its own one removed too


_UPLOAD_IN_CHILD = """
import sys
from pathlib import Path
from bangkok_pipeline.core.object_store import ObjectStore
ObjectStore(sys.argv[1]).upload(Path(sys.argv[2]), sys.argv[3])
"""


def test_a_step_killed_mid_upload_leaves_nothing_a_later_run_takes_for_whole(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """SIGKILL while a layer's files go up: no marker, so a re-execution of that run does not
    read the half layer, and the next publish of the month removes its prefix."""
    url = _use(s3, monkeypatch)
    store = ObjectStore(url)
    folder = tmp_path / "layer"
    folder.mkdir()
    for number in range(400):
        (folder / f"part-{number:03d}.parquet").write_bytes(b"x" * 1024)
    month = Month.parse(MONTH)
    dead = f"runs/{MONTH}/dead-run/raw"
    child = subprocess.Popen([sys.executable, "-c", _UPLOAD_IN_CHILD, url, str(folder), dead])
    try:
        deadline = time.monotonic() + 60
        while len(store.children(dead)) < 5:  # a few files are up, far from all 400
            assert child.poll() is None and time.monotonic() < deadline, "upload did not start"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert 5 <= len(store.children(dead)) < 400 and not store.complete(dead)
    with (
        step_layers(month, "retry-run", ("dead-run",), url=url) as retry,
        pytest.raises(LayerMissing, match="no raw layer of 2019-02 for run retry-run"),
    ):
        retry.read_dir("raw")
    with step_layers(month, "next-run", url=url) as following:
        with following.writing("raw") as written:
            (written / "manifest.json").write_text("{}")
        following.publish(is_live=lambda run_id: False)
    assert store.children(f"runs/{MONTH}") == ["next-run"]
    assert store.read_text(f"published/{MONTH}/raw") == "next-run"


def test_a_load_that_read_the_published_layer_leaves_it_published() -> None:
    """`load_month` materialized alone reads the month's published layer; its publish keeps the
    pointer on the run that uploaded it, and that run's prefix."""
    url, month = f"memory://bangkok-{uuid.uuid4().hex[:8]}", Month.parse(MONTH)
    with step_layers(month, "full-run", url=url) as full:
        for layer in ("raw", "validated"):
            with full.writing(layer) as folder:
                (folder / "summary.json").write_text(layer)
        full.publish(is_live=lambda run_id: False)
    with step_layers(month, "load-alone", published_fallback=True, url=url) as alone:
        assert (alone.read_dir("validated") / "summary.json").read_text() == "validated"
        alone.publish(is_live=lambda run_id: False)
    store = ObjectStore(url)
    assert store.read_text(f"published/{MONTH}/validated") == "full-run"
    assert store.children(f"runs/{MONTH}") == ["full-run"]
    with step_layers(month, "later", published_fallback=True, url=url) as later:
        assert (later.read_dir("validated") / "summary.json").read_text() == "validated"
