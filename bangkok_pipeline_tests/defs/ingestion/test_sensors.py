"""Sensor and schedule evaluations against a real Dagster instance on PostgreSQL storage.

The source sensor is evaluated with `build_sensor_context` on generated files that appear, grow
by a day, stay the same, disappear, go backwards or grow too big; the nightly schedule with
`build_schedule_context` at 02:00 Bangkok; the run-failure sensor with a real failed run.
"""

import json
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.core.settings import BANGKOK_TZ
from bangkok_pipeline.db.connection import dagster_storage_url
from bangkok_pipeline.defs.ingestion.assets import raw_readings
from bangkok_pipeline.defs.ingestion.partitions import (
    BUILDINGS,
    add_building_partitions,
    building_month,
    partition_key,
)
from bangkok_pipeline.defs.ingestion.schedules import nightly_ingest_schedule
from bangkok_pipeline.defs.ingestion.sensors import run_failure_alert_sensor, source_files_sensor
from bangkok_pipeline.defs.resources import LayersResource, PostgresResource, SourceDirectory
from bangkok_pipeline.devtools.generator import generate
from bangkok_pipeline.source.layout import BUILDING
from bangkok_pipeline.source.state import (
    DirectoryState,
    building_states_from_json,
    scan_directory,
)
from bangkok_pipeline.warehouse import buildings
from bangkok_pipeline_tests.conftest import cubems, new_database

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two months (2018-07, 2018-08) of all seven floors."""
    out = tmp_path_factory.mktemp("generated")
    generate(out, [Month(2018, 7), Month(2018, 8)], seed=3)
    (out / "manifest.json").unlink()
    return out


@pytest.fixture
def instance(server_url: str) -> Iterator[dg.DagsterInstance]:
    """A Dagster instance whose run, event and schedule storage is a fresh PostgreSQL database."""
    with new_database(server_url) as url:
        name = str(conninfo_to_dict(url)["dbname"])
        storage = {"postgres": {"postgres_url": dagster_storage_url(url, database=name)}}
        with dg.instance_for_test(overrides={"storage": storage}) as test_instance:
            yield test_instance


def _split_at(path: Path, day: str) -> bytes:
    """Cut a file before the first line of `day`; return the bytes cut off."""
    data = path.read_bytes()
    cut = data.index(f"\n{day} ".encode()) + 1
    path.write_bytes(data[:cut])
    return data[cut:]


@pytest.fixture
def database(migrated_url: str) -> PostgresResource:
    return PostgresResource(database_url=migrated_url)


def _evaluate(
    instance: dg.DagsterInstance, source: Path, cursor: str | None, database: PostgresResource
) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"source": SourceDirectory(path=str(source)), "database": database},
    )
    result = source_files_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def _nightly_context(
    instance: dg.DagsterInstance, source: Path, database: PostgresResource
) -> dg.ScheduleEvaluationContext:
    """The nightly schedule's tick of 2026-11-23 02:00 Bangkok. Use it in a `with`: an unclosed
    context leaves the instance it opened registered as Dagster's current defs-state storage,
    which breaks later Definitions loads."""
    return dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=datetime(2026, 11, 23, 2, 0, tzinfo=BANGKOK_TZ),
        resources={"source": SourceDirectory(path=str(source)), "database": database},
    )


def _months(result: dg.SensorResult, building: str = BUILDING) -> list[str]:
    """The months of `building` requested."""
    keys = [building_month(r.partition_key or "") for r in result.run_requests or []]
    return sorted(str(key.month) for key in keys if key.building == building)


def _states(result: dg.SensorResult) -> dict[str, DirectoryState]:
    return building_states_from_json(result.cursor, BUILDING)


def test_new_files_request_their_months_and_nothing_else_without_change(
    instance: dg.DagsterInstance,
    generated: Path,
    tmp_path: Path,
    database: PostgresResource,
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    first = _evaluate(instance, source, None, database)
    assert _months(first) == [] and first.skip_reason
    for name in ("2018Floor1.csv", "2018Floor2.csv"):
        shutil.copy(generated / name, source / name)
    second = _evaluate(instance, source, first.cursor, database)
    assert _months(second) == ["2018-07", "2018-08"]
    run_keys = {r.run_key for r in second.run_requests or []}
    assert len(run_keys) == 2 and all(key and ":" in key for key in run_keys)
    third = _evaluate(instance, source, second.cursor, database)
    assert _months(third) == []
    assert "no source file changed" in str(third.skip_reason)


def test_a_day_appended_requests_only_its_month_with_a_new_run_key(
    instance: dg.DagsterInstance,
    generated: Path,
    tmp_path: Path,
    database: PostgresResource,
) -> None:
    source = tmp_path / "source"
    shutil.copytree(generated, source)
    tail = _split_at(source / "2018Floor4.csv", "2018-08-31")
    before = _evaluate(instance, source, None, database)
    keys_before = {r.partition_key: r.run_key for r in before.run_requests or []}
    with (source / "2018Floor4.csv").open("ab") as handle:
        handle.write(tail)
    after = _evaluate(instance, source, before.cursor, database)
    assert _months(after) == ["2018-08"]
    august = cubems("2018-08")
    assert after.run_requests[0].run_key != keys_before[august]  # type: ignore[index]


def test_the_cursor_survives_a_restart(
    instance: dg.DagsterInstance,
    generated: Path,
    tmp_path: Path,
    database: PostgresResource,
) -> None:
    """The cursor is plain JSON of per-building, per-file, per-month digests: stored, reloaded,
    it still says nothing changed; the cursor of the version that watched one folder is read as
    CU-BEMS's and says the same."""
    source = tmp_path / "source"
    shutil.copytree(generated, source)
    first = _evaluate(instance, source, None, database)
    stored = json.loads(first.cursor or "")
    assert set(stored) == {BUILDING}
    assert set(stored[BUILDING]) == {f"2018Floor{n}.csv" for n in range(1, 8)}
    again = _evaluate(instance, source, json.dumps(stored), database)
    assert _months(again) == [] and again.cursor == first.cursor
    one_folder = json.dumps(stored[BUILDING])  # what the sensor kept before buildings
    upgraded = _evaluate(instance, source, one_folder, database)
    assert _months(upgraded) == [] and upgraded.cursor == first.cursor


def test_deleted_older_and_huge_files_and_a_missing_directory_are_reported(
    instance: dg.DagsterInstance,
    generated: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    database: PostgresResource,
) -> None:
    source = tmp_path / "source"
    shutil.copytree(generated, source)
    start = _evaluate(instance, source, None, database)

    (source / "2018Floor1.csv").unlink()
    _split_at(source / "2018Floor2.csv", "2018-08-15")  # shorter: an older version
    deleted = _evaluate(instance, source, start.cursor, database)
    assert _months(deleted) == []
    reason = str(deleted.skip_reason)
    assert "2018Floor1.csv: deleted or moved" in reason and "nothing is deleted" in reason
    assert "2018Floor2.csv: went backwards" in reason
    quiet = _evaluate(instance, source, deleted.cursor, database)
    assert _months(quiet) == [] and "deleted" not in str(quiet.skip_reason)

    monkeypatch.setenv("BANGKOK_MAX_SOURCE_BYTES", "1000")
    with (source / "2018Floor3.csv").open("ab") as handle:
        handle.write(b"2018-08-31 23:59:00\n")
    huge = _evaluate(instance, source, quiet.cursor, database)
    assert _months(huge) == []
    assert "2018Floor3.csv: " in str(huge.skip_reason) and "limit" in str(huge.skip_reason)

    shutil.rmtree(source)
    gone = _evaluate(instance, source, huge.cursor, database)
    assert f"{BUILDING}: source directory {source} does not exist" in str(gone.skip_reason)
    assert gone.cursor == huge.cursor


@contextmanager
def _unprivileged() -> Iterator[None]:
    """Root reads any file: act as `nobody` for a moment so permissions apply."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_an_unreadable_file_is_reported_and_the_scan_goes_on(
    instance: dg.DagsterInstance,
    generated: Path,
    tmp_path: Path,
    database: PostgresResource,
) -> None:
    source = tmp_path / "source"
    shutil.copytree(generated, source)
    start = _evaluate(instance, source, None, database)
    target = source / "2018Floor5.csv"
    with target.open("ab") as handle:
        handle.write(b"2018-08-31 23:59:00\n")
    target.chmod(0)
    for folder in [source, *source.parents]:  # let `nobody` list the folder
        folder.chmod(folder.stat().st_mode | stat.S_IXOTH | stat.S_IROTH)
    with _unprivileged():
        scan = scan_directory(source, _states(start)[BUILDING], 10**12)
    assert scan.changed == {}
    assert scan.problems == ["2018Floor5.csv: cannot read (Permission denied); skipped"]
    assert scan.state.files["2018Floor5.csv"] == _states(start)[BUILDING].files["2018Floor5.csv"]


def test_nightly_schedule_requests_changed_months_and_the_latest(
    instance: dg.DagsterInstance,
    generated: Path,
    migrated_url: str,
    tmp_path: Path,
    database: PostgresResource,
) -> None:
    assert nightly_ingest_schedule.cron_schedule == "0 2 * * *"
    assert nightly_ingest_schedule.execution_timezone == "Asia/Bangkok"
    source = tmp_path / "source"
    shutil.copytree(generated, source)
    digests = _evaluate(instance, source, None, database)
    state = _states(digests)[BUILDING].month_digests()
    with psycopg.connect(migrated_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO load_log (building_id, month, status, source_fingerprints, finished_at) "
            "VALUES (1, '2018-07-01', 'succeeded', %s, now())",
            (json.dumps({"month_digest": state["2018-07"]}),),
        )
    with _nightly_context(instance, source, database) as context:
        requests = nightly_ingest_schedule(context)
        assert isinstance(requests, list)
        assert [r.partition_key for r in requests] == [cubems("2018-08")]
        run_key = f"nightly:2026-11-23:{BUILDING}|2018-08:{state['2018-08']}"
        assert requests[0].run_key == run_key

        with psycopg.connect(migrated_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO load_log (building_id, month, status, source_fingerprints, "
                "finished_at) VALUES (1, '2018-08-01', 'succeeded', %s, now())",
                (json.dumps({"month_digest": state["2018-08"]}),),
            )
        latest_only = nightly_ingest_schedule(context)
        assert isinstance(latest_only, list)
        assert [r.partition_key for r in latest_only] == [cubems("2018-08")]


def test_a_failed_run_is_recorded_and_posted_to_the_webhook(
    instance: dg.DagsterInstance,
    migrated_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    webhook: list[dict[str, Any]],
) -> None:
    monkeypatch.setenv("BANGKOK_HOME", str(tmp_path / "home"))
    add_building_partitions(instance, [BUILDING])
    result = dg.materialize(
        [raw_readings],
        partition_key=cubems("2018-07"),
        instance=instance,
        resources={
            "database": PostgresResource(database_url=migrated_url),
            "source": SourceDirectory(path=str(tmp_path / "missing")),
            "layers": LayersResource(),
        },
        raise_on_error=False,
    )
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    failure = result.get_run_failure_event()
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=failure,
        resources={"database": PostgresResource(database_url=migrated_url)},
    ).for_run_failure()
    run_failure_alert_sensor(context)
    with psycopg.connect(migrated_url) as conn:
        row = conn.execute(
            "SELECT run_id, partition_key, failed_steps, error_summary, alerted FROM run_failures"
        ).fetchone()
    assert row is not None
    assert row[0] == result.run_id and row[1] == f"{BUILDING}|2018-07" and row[4] is True
    assert row[2] == ["raw_readings"]
    assert webhook and webhook[-1]["run_id"] == result.run_id


def test_every_registered_building_is_watched_and_made_a_partition(
    instance: dg.DagsterInstance,
    generated: Path,
    migrated_url: str,
    tmp_path: Path,
    database: PostgresResource,
) -> None:
    """A building registered with its folder becomes a partition of the building dimension on
    the sensor's next tick, and its changed months are requested beside CU-BEMS's, each under
    its own partition and run key; the nightly schedule goes through every building too."""
    source = tmp_path / "source"
    shutil.copytree(generated, source)
    first = _evaluate(instance, source, None, database)
    assert _months(first) == ["2018-07", "2018-08"]
    assert instance.get_dynamic_partitions(BUILDINGS) == [BUILDING]

    tower = tmp_path / "tower"
    tower.mkdir()
    shutil.copy(generated / "2018Floor3.csv", tower / "2018Floor3.csv")
    with psycopg.connect(migrated_url, autocommit=True) as conn:
        buildings.register(conn, "Tower B", tower)
    second = _evaluate(instance, source, first.cursor, database)
    assert _months(second) == [] and _months(second, "Tower B") == ["2018-07", "2018-08"]
    assert instance.get_dynamic_partitions(BUILDINGS) == [BUILDING, "Tower B"]
    keys = {r.run_key for r in [*(first.run_requests or []), *(second.run_requests or [])]}
    assert len(keys) == 4
    assert set(_states(second)) == {BUILDING, "Tower B"}

    with (tower / "2018Floor3.csv").open("ab") as handle:
        handle.write(b"2018-08-31 23:59:30,1\n")  # a line more in August
    third = _evaluate(instance, source, second.cursor, database)
    assert _months(third) == [] and _months(third, "Tower B") == ["2018-08"]

    with _nightly_context(instance, source, database) as context:
        nightly = nightly_ingest_schedule(context)
    assert isinstance(nightly, list)  # nothing loaded yet: every month of both
    assert sorted(r.partition_key for r in nightly) == sorted(
        [cubems("2018-07"), cubems("2018-08")]
        + [partition_key("Tower B", m) for m in ("2018-07", "2018-08")]
    )
