"""The command line: database commands end to end, and clear refusals of bad input."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from bangkok_pipeline.cli.main import build_parser, run
from bangkok_pipeline.db.embedded import platform_problem
from bangkok_pipeline.devtools import sample
from bangkok_pipeline.source.layout import BUILDING


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from bangkok_pipeline.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


@pytest.mark.integration
def test_db_commands_against_a_database_url(database_url: str) -> None:
    env = {"DATABASE_URL": database_url}
    assert _cli("db", "url", env=env).stdout.strip() == database_url
    migrate = _cli("db", "migrate", env=env)
    assert migrate.returncode == 0, migrate.stderr
    assert "applied 0001_core_schema" in migrate.stdout
    assert "already up to date" in _cli("db", "migrate", env=env).stdout
    down = _cli("db", "downgrade", "base", env=env)
    assert down.returncode == 0 and "is at 0000" in down.stdout
    past = _cli("db", "downgrade", env=env)
    assert past.returncode == 1
    assert past.stderr.strip() == (
        "error: nothing to downgrade: the database is at base (no migration applied)"
    )


def test_unreachable_database_url_names_host_and_database_but_not_password() -> None:
    result = _cli(
        "db",
        "migrate",
        env={
            "DATABASE_URL": "postgresql://loader:s3cret@127.0.0.1:9/readings",
            "BANGKOK_CONNECT_ATTEMPTS": "2",
        },
    )
    assert result.returncode == 1
    message = result.stderr.strip()
    assert message.startswith(
        "error: cannot connect to PostgreSQL (host 127.0.0.1:9, "
        "database readings, user loader) after 2 attempts"
    )
    assert "s3cret" not in message and len(message.splitlines()) == 1


@pytest.mark.parametrize(
    ("months", "message"),
    [
        ("2018/07", "error: '2018/07' is not a month; expected YYYY-MM, for example 2018-07"),
        (
            "2020-01..2020-02",
            "error: 2020-01, 2020-02 outside the month partitions "
            "(2018-07..2019-12; CUBEMS_LAST_MONTH moves their end)",
        ),
    ],
)
def test_generate_refuses_bad_months(
    tmp_path: Path, months: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["generate", "--out", str(tmp_path), "--months", months]) == 1
    assert capsys.readouterr().err.strip() == message
    assert list(tmp_path.iterdir()) == []


def test_generate_refuses_an_unwritable_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert run(["generate", "--out", str(blocker / "sub"), "--months", "2018-07", "--quiet"]) == 1
    assert "error: " in capsys.readouterr().err


def test_generate_add_refuses_other_options_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"seed": 42, "with_defects": true, "months": ["2018-07"]}')
    assert run(["generate", "--out", str(tmp_path), "--months", "2018-08", "--add"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path} was generated with --seed 42 --defects; add months with the same "
        "options"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def _private(home: Path) -> list[str]:
    """Paths under `home` that other users could read or write (the server's data directory
    aside, which PostgreSQL keeps 0700 itself; directories may keep the search bit that lets the
    server's own OS user reach it when we run as root)."""
    exposed = []
    for path in [home, *home.rglob("*")]:
        if "pgdata" in path.relative_to(home).parts:
            continue
        mode = path.lstat().st_mode & 0o777
        allowed = 0o001 if path.is_dir() else 0
        if mode & 0o077 & ~allowed:
            exposed.append(f"{path.relative_to(home)} {oct(mode)}")
    return exposed


@pytest.mark.integration
def test_load_sample_on_the_embedded_default_records_runs_in_postgres_and_keeps_files_private(
    tmp_path: Path,
) -> None:
    """The README's first command, headless, with nothing but BANGKOK_HOME set."""
    home = tmp_path / "home"
    env = {"BANGKOK_HOME": str(home)}
    for name in ("DATABASE_URL", "DAGSTER_HOME", "CUBEMS_SOURCE_DIR", "BANGKOK_DAGSTER_PG_URL"):
        env[name] = ""
    try:
        result = _cli("load", "--sample", "--quiet", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "generating the sample week" in result.stdout
        assert "ok   2018-07: " in result.stdout and "1 of 1 month(s) loaded" in result.stdout
        assert sample.EXPECTED_FINDINGS in result.stdout  # the warnings explained where seen
        assert not (home / "source").exists()  # nothing written where real data would go

        runs = _cli("env", env=env)
        exports = dict(
            line.removeprefix("export ").split("=", 1) for line in runs.stdout.splitlines()
        )
        storage = exports["BANGKOK_DAGSTER_PG_URL"].strip("'")
        assert storage.startswith("postgresql+psycopg2://")
        dagster_url = exports["DATABASE_URL"].strip("'").replace("/bangkok?", "/dagster?")
        with psycopg.connect(dagster_url) as conn:
            row = conn.execute(
                "SELECT r.status, t.value FROM runs AS r JOIN run_tags AS t USING (run_id) "
                "WHERE t.key = 'dagster/partition'"
            ).fetchone()
        assert row is not None
        (status, partition) = row
        assert (status, partition) == ("SUCCESS", f"{BUILDING}|2018-07")
        assert (home / "layers" / "raw" / "2018-07" / "manifest.json").exists()
        assert _private(home) == []  # the sample is generated once: devtools/test_sample.py
    finally:
        _cli("db", "stop", env=env)


@pytest.mark.parametrize("holds", [[], ["2018Floor1.csv.gz", "2018Floor2.csv.gz"], ["notes.txt"]])
def test_load_refuses_a_folder_without_cubems_files_and_writes_nothing_into_it(
    tmp_path: Path, holds: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped --source used to get stand-in files generated into it and loaded."""
    source = tmp_path / "typo"
    source.mkdir()
    for name in holds:
        (source / name).write_bytes(b"\x1f\x8b")
    assert run(["load", "--source", str(source)]) == 1
    message = capsys.readouterr().err.strip()
    assert message.startswith(f"error: no CU-BEMS files in {source}: ")
    assert ("it is empty" in message) if not holds else (f"it holds {', '.join(holds)}" in message)
    assert "such as 2018Floor1.csv" in message and len(message.splitlines()) == 1
    assert sorted(p.name for p in source.iterdir()) == sorted(holds)
    assert run(["load", "--source", str(tmp_path / "missing")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()


@pytest.mark.integration
def test_a_new_years_files_load_once_cubems_last_month_covers_them(
    tmp_path: Path, server_url: str
) -> None:
    """New data used to be refused by the CLI ("outside the data") while Dagster loaded it."""
    from bangkok_pipeline.core.months import Month
    from bangkok_pipeline.devtools.generator import generate
    from bangkok_pipeline.devtools.sample import keep_first_days
    from bangkok_pipeline_tests.conftest import new_database

    source = tmp_path / "source"
    generate(source, [Month(2020, 1)], seed=3)
    for path in source.glob("*Floor*.csv"):
        keep_first_days(path, 1)
    home = tmp_path / "home"
    env = {"BANGKOK_HOME": str(home), "DAGSTER_HOME": "", "CUBEMS_SOURCE_DIR": str(source)}
    with new_database(server_url) as url, new_database(server_url) as dagster_url:
        env |= {"DATABASE_URL": url, "BANGKOK_DAGSTER_PG_URL": _sqlalchemy(dagster_url)}
        refused = _cli("load", env=env)
        assert refused.returncode == 1
        assert "set CUBEMS_LAST_MONTH=2020-01 to load them" in refused.stdout
        assert "hold no line of a month 2018-07..2019-12" in refused.stderr
        months = _cli("load", "--months", "2020-01", env=env)
        assert "2020-01 outside the month partitions (2018-07..2019-12" in months.stderr

        loaded = _cli("load", env={**env, "CUBEMS_LAST_MONTH": "2020-01"})
        assert loaded.returncode == 0, loaded.stdout + loaded.stderr
        manifest = json.loads((source / "manifest.json").read_text())
        assert manifest["totals"]["2020-01"]["valid_readings"] > 0
        with psycopg.connect(url) as conn:
            (first, count) = conn.execute(
                "SELECT min(ts AT TIME ZONE 'Asia/Bangkok'), count(*) FROM sensor_readings"
            ).fetchone()  # type: ignore[misc]
        assert first.year == 2020 and count > 200_000
        assert f"ok   2020-01: {count:,} readings loaded" in loaded.stdout


def _sqlalchemy(url: str) -> str:
    from bangkok_pipeline.db.connection import dagster_storage_url

    params = psycopg.conninfo.conninfo_to_dict(url)
    return dagster_storage_url(url, str(params["dbname"]))


@pytest.mark.integration
def test_psql_runs_on_the_database_in_use_with_its_arguments_in_bangkok_time(
    migrated_url: str,
) -> None:
    env = {"DATABASE_URL": migrated_url}
    query = "SELECT current_database(), current_setting('TimeZone'), count(*) FROM sensors"
    result = _cli("psql", "--no-align", "--tuples-only", "-c", query, env=env)
    assert result.returncode == 0, result.stderr
    database = psycopg.conninfo.conninfo_to_dict(migrated_url)["dbname"]
    assert result.stdout.strip() == f"{database}|Asia/Bangkok|0"
    failed = _cli("psql", "-v", "ON_ERROR_STOP=1", "-c", "SELECT * FROM no_such_table", env=env)
    assert failed.returncode != 0 and "no_such_table" in failed.stderr


def _subcommands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += [child, *_subcommands(child)]
    return found


def test_every_command_says_what_it_does_and_unknown_arguments_are_refused() -> None:
    for command in _subcommands(build_parser()):
        assert command.description, command.prog
    assert _cli("--version").stdout.startswith("bangkok-pipeline ")
    wrong = _cli("health", "--no-such-option")
    assert wrong.returncode == 2 and "unrecognized arguments: --no-such-option" in wrong.stderr


_WITHOUT_POSIX_MODULES = """
import sys

for name in ("fcntl", "pwd"):
    sys.modules[name] = None  # as on Windows: importing them raises ImportError

from bangkok_pipeline.cli.main import main

main()
"""


@pytest.mark.integration
def test_with_a_database_url_commands_need_neither_fcntl_nor_pwd(migrated_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": migrated_url}
    for command in (["db", "migrate"], ["health"], ["access", "list"]):
        result = subprocess.run(
            [sys.executable, "-c", _WITHOUT_POSIX_MODULES, *command],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert result.returncode in (0, 2), (command, result.stderr)  # health: 2 = critical
        assert "Traceback" not in result.stderr, result.stderr


def test_the_embedded_server_refuses_a_platform_it_cannot_run_on_in_one_line() -> None:
    assert platform_problem("linux") is None and platform_problem("darwin") is None
    problem = platform_problem("win32")
    assert problem is not None and "\n" not in problem
    assert "Linux and macOS" in problem and "DATABASE_URL" in problem


def test_load_refuses_months_without_source_lines_in_one_line_before_anything_runs(
    tiny_source: Path, tmp_path: Path
) -> None:
    env = {"BANGKOK_HOME": str(tmp_path / "home"), "DATABASE_URL": ""}
    result = _cli("load", "--source", str(tiny_source), "--months", "2019-03..2019-05", env=env)
    assert result.returncode == 1 and not result.stdout
    assert result.stderr.strip() == (
        f"error: no source lines for 2019-04, 2019-05 in {tiny_source} (its files hold "
        "2019-02, 2019-03): nothing was loaded"
    )
    assert not (tmp_path / "home").exists()  # no server started, nothing written
