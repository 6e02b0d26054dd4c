"""Retention with an archive on a real server: archive -> restore gives back the month exactly
(count, exact sum, checksum, aggregates); a crash (SIGKILL) between writing the archive and
dropping the partition leaves the month in place; bad input (a policy that drops every month, an
unwritable or full directory, a write that fails, restoring a month that is present, a damaged
file) is refused with nothing changed; the retention policy archives the right months, drops
aggregates only of archived months, and a restore rebuilds them."""

import errno
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl
import psycopg
import pytest

from bangkok_pipeline.cli.main import run
from bangkok_pipeline.core.months import Month
from bangkok_pipeline.source.layout import BUILDING
from bangkok_pipeline.warehouse import archive
from bangkok_pipeline.warehouse.archive import ArchiveError
from bangkok_pipeline.warehouse.maintenance import create_empty_partition
from bangkok_pipeline.warehouse.month_lock import held_months, month_lock
from bangkok_pipeline.warehouse.partitions import READINGS
from bangkok_pipeline_tests.conftest import load_directly, new_database

pytestmark = [pytest.mark.integration, pytest.mark.hosted]

FEB = Month(2019, 2)


class Database:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, statement: str, params: tuple[object, ...] = ()) -> list[tuple]:
        with psycopg.connect(self.url) as conn:
            return conn.execute(statement, params).fetchall()

    def month(self, first_day: str) -> dict[str, list[tuple]]:
        """A month's readings (count, exact numeric sum, fingerprint hash per sensor) and its
        aggregates, read through the parent tables."""
        bounds = Month.of(date.fromisoformat(first_day)).bounds
        return {
            "readings": self.query(
                "SELECT sensor_id, count(*), sum(value::numeric), sum(((extract(epoch FROM ts)"
                "::bigint / 60) %% 1048576) * 1000003 + ('x' || encode(float4send(value), 'hex'))"
                "::bit(32)::int) FROM sensor_readings WHERE ts >= %s AND ts < %s "
                "GROUP BY 1 ORDER BY 1",
                bounds,
            ),
            "hourly": self.query(
                "SELECT sensor_id, count(*), sum(n), round(sum(avg_value)::numeric, 6), "
                "min(min_value), max(max_value) FROM hourly_sensor_stats "
                "WHERE bucket >= %s AND bucket < %s GROUP BY 1 ORDER BY 1",
                bounds,
            ),
            "daily": self.query(
                "SELECT day, sensor_id, n, round(avg_value::numeric, 6), energy_kwh IS NULL "
                "FROM daily_sensor_stats WHERE day >= %s::date "
                "AND day < %s::date + interval '1 month' ORDER BY 1, 2",
                (first_day, first_day),
            ),
        }

    def partitions(self) -> list[str]:
        return [
            name
            for (name,) in self.query(
                "SELECT relname FROM pg_class WHERE relnamespace = 'partitions'::regnamespace "
                "AND relkind = 'r' ORDER BY 1"
            )
        ]


@pytest.fixture(scope="module")
def database(
    server_url: str, tiny_source: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    home = tmp_path_factory.mktemp("archive-home")
    with new_database(server_url, migrate=True) as url:
        load_directly(url, tiny_source, "2019-02", home)
        load_directly(url, tiny_source, "2019-03", home)
        yield Database(url)


_CRASH_BEFORE_DROP = """
import os, signal, sys
from pathlib import Path
import psycopg
from bangkok_pipeline.core.months import Month
from bangkok_pipeline.warehouse.archive import archive_month
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    archive_month(conn, Month(2019, 2), Path(sys.argv[2]),
                  before_drop=lambda: os.kill(os.getpid(), signal.SIGKILL))
"""


def test_a_crash_between_archive_and_drop_leaves_the_month_in_place(
    database: Database, tmp_path: Path
) -> None:
    before, tables = database.month("2019-02-01"), database.partitions()
    child = subprocess.run(
        [sys.executable, "-c", _CRASH_BEFORE_DROP, database.url, str(tmp_path)], timeout=120
    )
    assert child.returncode == -signal.SIGKILL
    parquet, manifest = archive.paths(tmp_path, FEB)
    assert parquet.is_file() and manifest.is_file(), "the crash came after the archive"
    assert database.month("2019-02-01") == before
    assert database.partitions() == tables
    assert database.query("SELECT count(*) FROM archived_months") == [(0,)]
    with psycopg.connect(database.url) as conn:
        assert held_months(conn) == set(), "the server released the dead process's month lock"


def test_archive_then_restore_gives_back_the_month_exactly(
    database: Database, tmp_path: Path
) -> None:
    before, tables = database.month("2019-02-01"), database.partitions()
    [(float8_sum,)] = database.query(
        "SELECT sum(value::float8) FROM partitions.sensor_readings_rows_y2019m02"
    )
    with psycopg.connect(database.url, autocommit=True) as conn:
        result = archive.archive_month(conn, FEB, tmp_path)
        assert result.rows == sum(n for _, n, _, _ in before["readings"])
        assert 0 < result.file_bytes < result.partition_bytes
        assert result.saving > 0.8, result.summary()
        assert database.month("2019-02-01")["readings"] == []
        assert database.month("2019-02-01")["hourly"] == before["hourly"], "aggregates stay"
        assert "sensor_readings_rows_y2019m02" not in database.partitions()
        manifest = archive.Manifest.read(archive.paths(tmp_path, FEB)[1])
        assert manifest.rows == result.rows
        assert manifest.checksum == str(sum(int(h) for _, _, _, h in before["readings"]))
        assert manifest.value_sum == pytest.approx(float8_sum, rel=1e-12)
        stored = pl.read_parquet(result.file)
        assert stored.height == result.rows
        assert stored.schema["ts"] == pl.Datetime("us", "Asia/Bangkok")
        assert database.query("SELECT row_count, restored_at FROM archived_months") == [
            (result.rows, None)
        ]

        restored = archive.restore_month(conn, FEB, tmp_path)
        assert restored.rows == result.rows and not restored.aggregates_rebuilt
    assert database.month("2019-02-01") == before
    assert database.partitions() == tables
    assert database.query("SELECT restored_at IS NOT NULL FROM archived_months") == [(True,)]


def test_refusals_change_nothing(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before, tables = database.month("2019-02-01"), database.partitions()
    ledger = database.query("SELECT * FROM archived_months")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with psycopg.connect(database.url, autocommit=True) as conn:
        with pytest.raises(ArchiveError, match="would archive every month"):
            archive.plan_retention(conn, 0, None)
        with pytest.raises(ArchiveError, match="at least as long as raw readings"):
            archive.plan_retention(conn, 2, 1)
        with pytest.raises(ArchiveError, match="is not writable"):
            archive.archive_month(conn, FEB, blocker / "archive")

        full = tmp_path / "full"
        with monkeypatch.context() as patch:
            patch.setattr(
                archive.shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(10**9, 10**9, 0)
            )
            with pytest.raises(ArchiveError, match="0.0 MB free"):
                archive.archive_month(conn, FEB, full)

        def no_space(*args: object, **kwargs: object) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        with monkeypatch.context() as patch:
            patch.setattr(pl.DataFrame, "write_parquet", no_space)
            with pytest.raises(ArchiveError, match="No space left on device; nothing was dropped"):
                archive.archive_month(conn, FEB, full)
        assert list(full.iterdir()) == []

        assert database.month("2019-02-01") == before
        assert database.partitions() == tables
        assert database.query("SELECT * FROM archived_months") == ledger

        with pytest.raises(ArchiveError, match="no archive of 2019-02"):
            archive.restore_month(conn, FEB, tmp_path / "empty")
        good, damaged = tmp_path / "good", tmp_path / "damaged"
        archive.archive_month(conn, FEB, good)
        archive.restore_month(conn, FEB, good)
        with pytest.raises(ArchiveError, match="2019-02 is already in the database"):
            archive.restore_month(conn, FEB, good)

        archive.archive_month(conn, FEB, good)
        shutil.copytree(good, damaged)
        parquet = archive.paths(damaged, FEB)[0]
        data = bytearray(parquet.read_bytes())
        data[len(data) // 2] ^= 0xFF
        parquet.write_bytes(bytes(data))
        with pytest.raises(ArchiveError, match="does not match its manifest"):
            archive.restore_month(conn, FEB, damaged)
        assert "sensor_readings_rows_y2019m02" not in database.partitions()
        with pytest.raises(ArchiveError, match="already archived"):
            archive.archive_month(conn, FEB, tmp_path / "other")
        archive.restore_month(conn, FEB, good)
    assert database.month("2019-02-01") == before
    assert database.partitions() == tables


def test_archive_refuses_a_month_whose_lock_is_held(database: Database, tmp_path: Path) -> None:
    tables = database.partitions()
    with (
        psycopg.connect(database.url, autocommit=True) as loader,
        month_lock(loader, FEB),  # as a load of the month holds it
        psycopg.connect(database.url, autocommit=True) as conn,
        pytest.raises(ArchiveError, match="2019-02 is being loaded, archived or restored"),
    ):
        archive.archive_month(conn, FEB, tmp_path)
    assert database.partitions() == tables
    assert list(tmp_path.iterdir()) == []


def test_retention_policy_archives_old_months_and_drops_aggregates_only_of_archived_ones(
    database: Database, tmp_path: Path
) -> None:
    before = database.month("2019-02-01")
    march = database.month("2019-03-01")
    lines: list[str] = []
    with psycopg.connect(database.url, autocommit=True) as conn:
        plan = archive.plan_retention(conn, 1, None)
        assert plan.archive == [FEB] and plan.drop_aggregates == []
        archive.apply_retention(conn, tmp_path, 1, None, report=lines.append)
        assert lines and lines[0].startswith("archived 2019-02: ")
        assert database.month("2019-02-01")["hourly"] == before["hourly"]
        assert archive.plan_retention(conn, 1, None).archive == []

        plan = archive.apply_retention(conn, tmp_path, 1, 1)
        assert plan.drop_aggregates == [FEB]
        gone = database.month("2019-02-01")
        assert gone == {"readings": [], "hourly": [], "daily": []}
        assert database.month("2019-03-01") == march
        assert archive.plan_retention(conn, 1, 1).drop_aggregates == []

        with conn.transaction():
            create_empty_partition(conn, READINGS, FEB)
        restored = archive.restore_month(conn, FEB, tmp_path)
        assert restored.aggregates_rebuilt
    assert database.month("2019-02-01") == before
    assert database.query(
        "SELECT aggregates_dropped, restored_at IS NOT NULL FROM archived_months"
    ) == [(False, True)]


def test_archive_commands(
    database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database.url)
    monkeypatch.setenv("BANGKOK_ARCHIVE_DIR", str(tmp_path))
    march = database.month("2019-03-01")
    assert run(["archive", "month", "--month", "2019-03"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("archived 2019-03: ") and "% smaller" in out
    assert run(["archive", "list"]) == 0
    assert capsys.readouterr().out.startswith(f"2019-03  {BUILDING:<16} archived ")
    assert run(["archive", "month", "--month", "2019-03"]) == 1
    assert "2019-03 is already archived" in capsys.readouterr().err
    monkeypatch.setenv("BANGKOK_RETAIN_RAW_MONTHS", "0")
    assert run(["archive", "run", "--dry-run"]) == 1
    assert "would archive every month" in capsys.readouterr().err
    assert run(["archive", "restore", "--month", "2019-03"]) == 0
    assert capsys.readouterr().out.startswith("restored 2019-03: ")
    assert database.month("2019-03-01") == march
