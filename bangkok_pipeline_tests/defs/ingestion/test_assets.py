"""The ingestion assets end to end: real Dagster materializations into a real PostgreSQL.

One month of generated data with every defect kind is loaded once per module; the tests then
check exact counts against the generator's manifest, quarantine reasons, an idempotent re-run
with a reader during its swap, a SIGKILL in the middle of COPY, aggregates and bad input.
"""

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.core.settings import BANGKOK_TZ
from bangkok_pipeline.defs.ingestion.assets import (
    _data_reaches_month_end,
    load_month_partitions,
    raw_readings,
    validated_readings,
)
from bangkok_pipeline.defs.ingestion.checks import ingestion_checks
from bangkok_pipeline.defs.resources import LayersResource, PostgresResource, SourceDirectory
from bangkok_pipeline.devtools.generator import generate
from bangkok_pipeline_tests.conftest import building_instance, cubems, new_database

pytestmark = pytest.mark.integration

MONTH = "2019-02"
ASSETS = [raw_readings, validated_readings, load_month_partitions, *ingestion_checks]


class Loaded:
    """A database with MONTH loaded from generated source files, and how to load it again."""

    def __init__(self, url: str, source: Path, home: Path) -> None:
        self.url = url
        self.source = source
        self.home = home
        self.manifest = json.loads((source / "manifest.json").read_text())

    def materialize(
        self, source: Path | None = None, run_config: Mapping[str, object] | None = None
    ) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            ASSETS,
            partition_key=cubems(MONTH),
            run_config=run_config,
            resources={
                "database": PostgresResource(database_url=self.url),
                "source": SourceDirectory(path=str(source or self.source)),
                "layers": LayersResource(),
            },
            instance=building_instance(),
            raise_on_error=False,
        )

    def query(self, statement: str, params: tuple[object, ...] = ()) -> list[tuple]:
        with psycopg.connect(self.url) as conn:
            return conn.execute(statement, params).fetchall()

    def snapshot(self) -> dict[str, list[tuple]]:
        """Everything a load writes, minus ids, run ids and timestamps of the load itself."""
        return {
            "readings": self.query(
                "SELECT sensor_id, count(*), round(sum(value::float8)::numeric, 4), "
                "min(ts), max(ts) FROM sensor_readings GROUP BY 1 ORDER BY 1"
            ),
            "hourly": self.query(
                "SELECT sensor_id, count(*), sum(readings), round(sum(avg_value)::numeric, 6), "
                "round(sum(energy_kwh)::numeric, 6) "
                "FROM hourly_aggregates GROUP BY 1 ORDER BY 1"
            ),
            "daily": self.query(
                "SELECT day, floor, round(energy_kwh::numeric, 6), sensors "
                "FROM daily_floor_energy ORDER BY day, floor"
            ),
            "quarantine": self.query(
                "SELECT month, source_file, line_no, column_name, raw_text, reason, detail "
                "FROM quarantine ORDER BY source_file, line_no, column_name"
            ),
            "sensors": self.query("SELECT * FROM sensors ORDER BY sensor_id"),
            "ledger": self.query(
                "SELECT month, sensor_id, frame_count, round(frame_sum::numeric, 4), frame_hash, "
                "matches "
                "FROM reconciliation ORDER BY 1, 2"
            ),
        }


@pytest.fixture(scope="module")
def loaded(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    home = tmp_path_factory.mktemp("home")
    source = tmp_path_factory.mktemp("source")
    generate(source, [Month(2019, 2)], seed=7, defects=True)
    with pytest.MonkeyPatch.context() as patch, new_database(server_url, migrate=True) as url:
        patch.setenv("BANGKOK_HOME", str(home))
        state = Loaded(url, source, home)
        result = state.materialize()
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        state.first_result = result  # type: ignore[attr-defined]
        yield state


def test_loaded_readings_equal_the_manifest_exactly(loaded: Loaded) -> None:
    expected = loaded.manifest["totals"][MONTH]["valid_readings"]
    low, high = Month(2019, 2).bounds
    assert loaded.query(
        "SELECT count(*) FROM sensor_readings WHERE ts >= %s AND ts < %s", (low, high)
    ) == [(expected,)]
    assert loaded.query("SELECT count(*) FROM sensor_readings") == [(expected,)]
    per_file = {
        name: months[MONTH]["valid_readings"]
        for name, entry in loaded.manifest["files"].items()
        for months in [entry["months"]]
    }
    rows = loaded.query(
        "SELECT 2019 || 'Floor' || s.floor || '.csv', count(*) FROM sensor_readings "
        "JOIN sensors AS s USING (sensor_id) GROUP BY 1"
    )
    assert dict(rows) == per_file


def test_every_injected_defect_is_quarantined_with_its_reason(loaded: Loaded) -> None:
    expected = sorted(
        (d["file"], d["line"], d["column"], d["reason"])
        for d in loaded.manifest["defects"]
        if d["reason"]
    )
    found = sorted(
        loaded.query("SELECT source_file, line_no, column_name, reason FROM quarantine"),
        key=lambda row: (row[0], row[1], row[2] or "", row[3]),
    )
    expected.sort(key=lambda row: (row[0], row[1], row[2] or "", row[3]))
    assert found == expected
    kinds = {d["kind"] for d in loaded.manifest["defects"]}
    assert {
        "bom",
        "crlf",
        "column_order",
        "new_column",
        "unknown_column",
        "truncated_last_line",
    } <= kinds


def test_quarantine_rows_name_file_line_column_and_expectation(loaded: Loaded) -> None:
    rows = loaded.query(
        "SELECT source_file, line_no, column_name, raw_text, reason, detail FROM quarantine "
        "WHERE reason = 'invalid_number' LIMIT 1"
    )
    source_file, line_no, column, raw_text, _, detail = rows[0]
    assert detail.startswith(f"{source_file} line {line_no} column {column}: '{raw_text}'")
    assert "number" in detail


def _number(metadata: dg.MetadataValue) -> float:
    value = metadata.value
    assert isinstance(value, int | float), metadata
    return value


def test_metadata_and_checks_of_the_materialization(loaded: Loaded) -> None:
    result: dg.ExecuteInProcessResult = loaded.first_result  # type: ignore[attr-defined]
    materializations = [
        e.event_specific_data.materialization  # type: ignore[union-attr]
        for e in result.get_asset_materialization_events()
    ]
    by_key = {m.asset_key.to_user_string(): m.metadata for m in materializations if m}
    validated = by_key["validated_readings"]
    total = loaded.manifest["totals"][MONTH]
    assert validated["readings"].value == total["valid_readings"]
    assert validated["quarantined"].value == sum(total["quarantine"].values())
    assert validated["identical_duplicate_lines"].value == total["identical_duplicates"]
    assert 0.9 < _number(validated["completeness"]) <= 1.0
    loaded_meta = by_key["sensor_readings"]
    assert loaded_meta["rows_loaded"].value == total["valid_readings"]
    assert loaded_meta["rows_quarantined"].value == sum(total["quarantine"].values())
    assert loaded_meta["rows_read"].value == total["rows"]
    assert loaded_meta["first_ts"] == dg.MetadataValue.timestamp(
        datetime(2019, 2, 1, tzinfo=BANGKOK_TZ)
    )
    assert loaded_meta["last_ts"] == dg.MetadataValue.timestamp(
        datetime(2019, 2, 28, 23, 59, tzinfo=BANGKOK_TZ)
    )
    assert loaded_meta["dagster/row_count"].value == total["valid_readings"]
    assert by_key["validated_readings"]["dagster/row_count"].value == total["valid_readings"]
    assert 0.9 < _number(loaded_meta["completeness"]) <= 1.0
    fingerprints = loaded_meta["source_fingerprints"].value
    assert isinstance(fingerprints, Mapping) and fingerprints["month_digest"]
    assert _number(loaded_meta["partition_bytes"]) > 0
    assert _number(loaded_meta["rows_per_second"]) > 0
    assert "source_fingerprints" in by_key["raw_readings"]
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        "quarantine_share_under_threshold": True,
        "completeness_per_floor": True,
        "data_reaches_month_end": True,
        "reconciliation": True,
        "coverage": checks["coverage"],
        "aggregates_match_raw": True,
        "api_roles_cannot_bypass_rls": True,
    }
    assert loaded.query("SELECT bool_and(matches), count(*) > 0 FROM reconciliation") == [
        (True, True)
    ]


def test_new_column_registers_a_sensor_and_unknown_column_does_not(loaded: Loaded) -> None:
    new = [c for entry in loaded.manifest["files"].values() for c in entry["new_columns"]]
    unknown = [c for entry in loaded.manifest["files"].values() for c in entry["unknown_columns"]]
    columns = {column for (column,) in loaded.query("SELECT source_column FROM sensors")}
    assert new and set(new) <= columns
    assert unknown and not set(unknown) & columns


def test_aggregates_equal_a_full_recomputation_from_raw(loaded: Loaded) -> None:
    differences = loaded.query(
        """
        WITH raw AS (
            SELECT date_trunc('hour', ts) AS bucket, sensor_id, count(*) AS n,
                   avg(value::float8) AS avg_value, min(value) AS min_value,
                   max(value) AS max_value
            FROM sensor_readings GROUP BY 1, 2
        )
        SELECT count(*) FROM raw
        FULL JOIN (SELECT bucket, sensor_id, readings AS n, avg_value, min_value, max_value
                   FROM hourly_aggregates) AS h USING (bucket, sensor_id)
        WHERE raw.n IS DISTINCT FROM h.n OR raw.min_value IS DISTINCT FROM h.min_value
           OR raw.max_value IS DISTINCT FROM h.max_value
           OR abs(raw.avg_value - h.avg_value) > 1e-9 * greatest(1, abs(raw.avg_value))
        """
    )
    assert differences == [(0,)]
    energy = loaded.query(
        "SELECT abs(sum(d.energy_kwh) - (SELECT sum(value::float8) / 60 FROM sensor_readings "
        "JOIN sensors USING (sensor_id) WHERE unit = 'kW')) FROM daily_sensor_stats AS d"
    )
    assert energy[0][0] < 1e-6


def test_rerunning_the_month_changes_nothing_and_readers_never_see_it_short(
    loaded: Loaded,
) -> None:
    """A second load of the month gives the same database, and a reader counting the readings
    all the while sees the whole month at every moment of the swap."""
    before = loaded.snapshot()
    expected = loaded.manifest["totals"][MONTH]["valid_readings"]
    counts: list[int] = []
    stop = threading.Event()

    def read() -> None:
        with psycopg.connect(loaded.url, autocommit=True) as conn:
            while not stop.is_set():
                row = conn.execute("SELECT count(*) FROM sensor_readings").fetchone()
                counts.append(row[0] if row else -1)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert loaded.materialize().success
    finally:
        stop.set()
        reader.join()
    assert len(counts) > 3
    assert set(counts) == {expected}
    assert loaded.snapshot() == before
    assert loaded.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'partitions'") == [
        (4,)  # compressed by the default policy: its days and daily statistics, each a month
    ]  # partitioned by building and the building's leaf


_LOAD_IN_CHILD = """
import sys
import psycopg
from bangkok_pipeline.warehouse.ingest import load_month
from bangkok_pipeline.transform.layers import run_layers
from bangkok_pipeline.core.months import Month
from bangkok_pipeline.core.settings import BANGKOK_TZ
with psycopg.connect(sys.argv[1], autocommit=True, application_name="killed-load") as conn:
    load_month(conn, run_layers(Month.parse(sys.argv[2]), "doomed-run", published_fallback=True))
"""


def test_sigkill_during_copy_leaves_the_month_intact_and_a_rerun_succeeds(
    loaded: Loaded,
) -> None:
    before = loaded.snapshot()
    child = subprocess.Popen(
        [sys.executable, "-c", _LOAD_IN_CHILD, loaded.url, MONTH],
        env={**__import__("os").environ, "BANGKOK_HOME": str(loaded.home)},
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            copying = loaded.query(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'killed-load' "
                "AND query LIKE 'COPY%%'"
            )
            if copying[0][0]:
                break
            assert child.poll() is None, "the load finished before it could be killed"
            time.sleep(0.02)
        else:
            pytest.fail("the child never reached COPY")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    time.sleep(0.5)  # the server notices the dead client and rolls its transaction back
    assert loaded.snapshot() == before
    assert loaded.query("SELECT status FROM load_log WHERE run_id = 'doomed-run'") == [("running",)]
    assert loaded.materialize().success
    assert loaded.snapshot() == before
    assert loaded.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'partitions'") == [
        (4,)  # compressed by the default policy: its days and daily statistics, each a month
    ]  # partitioned by building and the building's leaf
    assert loaded.query("SELECT status, error FROM load_log WHERE run_id = 'doomed-run'") == [
        ("failed", "abandoned: the process running this load died")
    ]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no CU-BEMS files in"),
        ({"notes.txt": "hello", "2019Floor1.csv.bak": "x"}, "no CU-BEMS files in"),
        (
            {"2019Floor1.csv": "Time,z1_Light(kW)\n2019-02-01 00:00:00,1.0\n"},
            "2019Floor1.csv line 1: expected first column 'Date', found 'Time'",
        ),
        (
            {"2019Floor2.csv": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"},
            "2019Floor2.csv: binary content",
        ),
        (
            {"2019Floor3.csv": "Date,z1_Light(kW)\n2019-05-01 00:00:00,1.0\n"},
            "no source rows for 2019-02",
        ),
    ],
)
def test_bad_sources_fail_with_a_specific_message_and_leave_the_database_as_it_was(
    loaded: Loaded, tmp_path: Path, files: dict[str, str | bytes], message: str
) -> None:
    before = loaded.snapshot()
    for name, content in files.items():
        target = tmp_path / name
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    result = loaded.materialize(source=tmp_path)
    assert not result.success
    failures = [
        e.step_failure_data.user_failure_data.description
        for e in result.all_events
        if e.is_step_failure and e.step_failure_data and e.step_failure_data.user_failure_data
    ]
    assert failures and failures[0] is not None and message in failures[0]
    assert loaded.snapshot() == before


def test_too_many_rejected_cells_fail_the_blocking_check_with_its_summary(loaded: Loaded) -> None:
    before = loaded.snapshot()
    config = {"ops": {"validated_readings": {"config": {"max_rejected_share": 0.0}}}}
    result = loaded.materialize(run_config=config)
    assert not result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    share = checks["quarantine_share_under_threshold"]
    assert not share.passed and share.severity == dg.AssetCheckSeverity.ERROR
    summary = share.metadata["summary"].value
    assert isinstance(summary, str) and summary.startswith(f"{MONTH}: ")
    assert "threshold 0.00%" in summary and share.description == f"not loading {summary}"
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert dg.AssetKey("sensor_readings") not in materialized  # the load did not run
    assert loaded.snapshot() == before


def test_a_missing_source_directory_is_named(loaded: Loaded, tmp_path: Path) -> None:
    result = loaded.materialize(source=tmp_path / "nowhere")
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_failure_data.user_failure_data is not None
    assert "nowhere does not exist" in str(failure.step_failure_data.user_failure_data.description)


def test_coverage_map_accounts_for_every_expected_minute(loaded: Loaded) -> None:
    totals = loaded.query(
        "SELECT sum(present_minutes), sum(expected_minutes - present_minutes), count(*) "
        "FROM sensor_coverage"
    )[0]
    gap_minutes = loaded.query("SELECT sum(minutes) FROM reading_gaps")[0][0]
    assert totals[0] == loaded.manifest["totals"][MONTH]["valid_readings"]
    assert totals[1] == gap_minutes
    sensors_in_headers = sum(
        len([c for c in entry["header"][1:] if c not in entry["unknown_columns"]])
        for entry in loaded.manifest["files"].values()
    )
    assert totals[2] == sensors_in_headers
    overlapping = loaded.query(
        "SELECT count(*) FROM reading_gaps AS g JOIN sensor_readings AS r "
        "ON r.sensor_id = g.sensor_id AND r.ts >= g.gap_start AND r.ts < g.gap_end"
    )
    assert overlapping == [(0,)]


def test_a_month_whose_data_stops_early_is_flagged() -> None:
    stopped = _data_reaches_month_end(Month(2019, 2), "2019-02-15 10:00:00+07:00", 2.0)
    assert not stopped.passed and stopped.severity == dg.AssetCheckSeverity.WARN
    assert stopped.metadata["hours_without_data"].value == 13 * 24 + 14
    assert _data_reaches_month_end(Month(2019, 2), "2019-02-28 23:59:00+07:00", 2.0).passed
    empty = _data_reaches_month_end(Month(2019, 2), None, 2.0)  # no placeholder number
    assert not empty.passed and "hours_without_data" not in empty.metadata
    assert not _data_reaches_month_end(Month(2019, 2), None, 2.0).passed
