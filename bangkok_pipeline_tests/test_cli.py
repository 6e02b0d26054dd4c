"""The command line: database commands end to end, and clear refusals of bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from bangkok_pipeline.cli import run


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from bangkok_pipeline.cli import main; main()", *args],
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
        ("2020-01..2020-02", "error: 2020-01, 2020-02 outside the data (2018-07..2019-12)"),
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


@pytest.mark.integration
def test_load_on_the_embedded_default_generates_loads_and_records_runs_in_postgres(
    tmp_path: Path,
) -> None:
    """The README's main command, end to end, with nothing but BANGKOK_HOME set."""
    home = tmp_path / "home"
    env = {"BANGKOK_HOME": str(home)}
    for name in ("DATABASE_URL", "DAGSTER_HOME", "CUBEMS_SOURCE_DIR", "BANGKOK_DAGSTER_PG_URL"):
        env[name] = ""
    try:
        result = _cli("load", "--months", "2018-07", "--quiet", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "generating sample data for 2018-07" in result.stdout
        manifest = json.loads((home / "source" / "manifest.json").read_text())
        valid = manifest["totals"]["2018-07"]["valid_readings"]
        assert f"ok   2018-07: {valid:,} readings loaded" in result.stdout
        assert "1 of 1 month(s) loaded" in result.stdout

        runs = _cli("env", env=env)
        exports = dict(
            line.removeprefix("export ").split("=", 1) for line in runs.stdout.splitlines()
        )
        storage = exports["BANGKOK_DAGSTER_PG_URL"].strip("'")
        assert storage.startswith("postgresql+psycopg2://")
        dagster_url = exports["DATABASE_URL"].strip("'").replace("/bangkok?", "/dagster?")
        with psycopg.connect(dagster_url) as conn:
            (status, partition) = conn.execute(
                "SELECT r.status, t.value FROM runs AS r JOIN run_tags AS t USING (run_id) "
                "WHERE t.key = 'dagster/partition'"
            ).fetchone()
        assert (status, partition) == ("SUCCESS", "2018-07")

        again = _cli("load", "--months", "2018-07", "--quiet", env=env)
        assert again.returncode == 0 and "generating" not in again.stdout
    finally:
        _cli("db", "stop", env=env)
