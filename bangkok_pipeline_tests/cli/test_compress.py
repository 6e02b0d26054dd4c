"""`db compress` and `db decompress` on a real server with two tiny loaded months: a round trip
moves the month between tiers and back with the view's readings unchanged (per-sensor count, sum
and hash), repeats say "already ..."; without --months the policy (BANGKOK_COMPRESS_AFTER_MONTHS)
decides, and no policy changes nothing; bad input (a month not loaded, a range with a month that
is not loaded, a decompress over the database budget) is one `error:` line, exit 1, nothing
changed."""

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from bangkok_pipeline.cli.main import run
from bangkok_pipeline.core.months import Month
from bangkok_pipeline.transform.fingerprint import (
    Figures,
    database_fingerprints,
    mismatched_sensors,
)
from bangkok_pipeline.warehouse import compression
from bangkok_pipeline_tests.conftest import load_directly, new_database

pytestmark = [pytest.mark.integration, pytest.mark.hosted]

FEB, MARCH = Month(2019, 2), Month(2019, 3)


@pytest.fixture(scope="module")
def loaded_url(
    server_url: str, tiny_source: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated database with 2019-02 and 2019-03 loaded as rows; every test leaves it so."""
    home = tmp_path_factory.mktemp("compress-home")
    with new_database(server_url, migrate=True) as url:
        load_directly(url, tiny_source, "2019-02", home)
        load_directly(url, tiny_source, "2019-03", home)
        yield url


@pytest.fixture
def cli(loaded_url: str, bangkok_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The CLI pointed at the loaded database, without a policy or budget from the caller."""
    monkeypatch.setenv("DATABASE_URL", loaded_url)
    monkeypatch.setenv("BANGKOK_COMPRESS_AFTER_MONTHS", "off")
    monkeypatch.delenv("BANGKOK_DB_BUDGET", raising=False)
    return loaded_url


def _state(url: str) -> tuple[dict[Month, str], Figures]:
    with psycopg.connect(url) as conn:
        return compression.tiers(conn), database_fingerprints(
            conn, sql.Identifier("sensor_readings")
        )


def _same_readings(before: Figures, after: Figures) -> None:
    assert before.keys() == after.keys()
    assert mismatched_sensors(before, after) == []


def _unchanged(url: str, before: tuple[dict[Month, str], Figures]) -> None:
    tiers, readings = _state(url)
    assert tiers == before[0]
    _same_readings(before[1], readings)


def test_compress_then_decompress_round_trips_a_month_through_the_view(
    cli: str, capsys: pytest.CaptureFixture[str]
) -> None:
    tiers, readings = _state(cli)
    assert tiers == {FEB: "rows", MARCH: "rows"}
    count = sum(n for n, _, _ in readings.values())

    assert run(["db", "compress", "--months", "2019-02"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("2019-02: compressed, "), out
    assert "x smaller) in " in out[0]
    tiers, after = _state(cli)
    assert tiers == {FEB: "compressed", MARCH: "rows"}
    _same_readings(readings, after)
    assert sum(n for n, _, _ in after.values()) == count

    assert run(["db", "compress", "--months", "2019-02..2019-03"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "2019-02: already compressed"
    assert out[1].startswith("2019-03: compressed, ") and len(out) == 2, out

    assert run(["db", "decompress", "--months", "2019-02..2019-03"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in out] == ["2019-02: rows", "2019-03: rows"], out
    assert all("x larger) in " in line for line in out), out
    tiers, after = _state(cli)
    assert tiers == {FEB: "rows", MARCH: "rows"}
    _same_readings(readings, after)

    assert run(["db", "decompress", "--months", "2019-03"]) == 0
    assert capsys.readouterr().out == "2019-03: already rows\n"


def test_without_months_the_policy_decides_and_no_policy_changes_nothing(
    cli: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _state(cli)
    assert run(["db", "compress"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "BANGKOK_COMPRESS_AFTER_MONTHS=off" in out, out
    monkeypatch.setenv("BANGKOK_COMPRESS_AFTER_MONTHS", "2")
    assert run(["db", "compress"]) == 0
    assert "nothing compressed" in capsys.readouterr().out
    _unchanged(cli, before)

    monkeypatch.setenv("BANGKOK_COMPRESS_AFTER_MONTHS", "1")
    assert run(["db", "compress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("2019-02: compressed, "), lines
    tiers, readings = _state(cli)
    assert tiers == {FEB: "compressed", MARCH: "rows"}
    _same_readings(before[1], readings)
    assert run(["db", "decompress", "--months", "2019-02"]) == 0
    assert capsys.readouterr().out.startswith("2019-02: rows, ")
    assert _state(cli)[0] == before[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["db", "compress", "--months", "2019-05"],
            "error: cannot compress: 2019-05 is not loaded; nothing was changed\n",
        ),
        (
            ["db", "compress", "--months", "2019-01..2019-04"],
            "error: cannot compress: 2019-01 is not loaded; 2019-04 is not loaded; "
            "nothing was changed\n",
        ),
        (
            ["db", "decompress", "--months", "2019-02..2019-04"],
            "error: cannot decompress: 2019-04 is not loaded; nothing was changed\n",
        ),
        (
            ["db", "compress", "--months", "2019-13"],
            "error: '2019-13' is not a month; expected YYYY-MM, for example 2018-07\n",
        ),
    ],
)
def test_months_that_are_not_loaded_are_refused_in_one_line(
    cli: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    before = _state(cli)
    assert run(argv) == 1
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", message)
    _unchanged(cli, before)


def test_decompress_over_the_budget_is_refused_with_the_size_it_needs(
    cli: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(["db", "compress", "--months", "2019-02"]) == 0
    capsys.readouterr()
    before = _state(cli)
    try:
        monkeypatch.setenv("BANGKOK_DB_BUDGET", "1MB")
        assert run(["db", "decompress", "--months", "2019-02..2019-03"]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        [line] = captured.err.splitlines()
        assert line.startswith("error: decompressing 2019-02 needs about "), line
        assert " MB (" in line and "readings as rows); the database is " in line
        assert line.endswith("of the 1.0 MB budget (BANGKOK_DB_BUDGET); nothing was changed")
        _unchanged(cli, before)
    finally:
        monkeypatch.delenv("BANGKOK_DB_BUDGET")
        assert run(["db", "decompress", "--months", "2019-02"]) == 0
    assert _state(cli)[0] == {FEB: "rows", MARCH: "rows"}
