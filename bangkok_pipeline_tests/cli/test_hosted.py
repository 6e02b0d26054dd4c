"""The README's hosted-PostgreSQL commands, as a user runs them: `DATABASE_URL` of the
Supabase-like PostgreSQL 15's project login (not a superuser), stand-in data with every defect,
Dagster's storage in a `dagster` database the command creates on the same server."""

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.devtools.generator import generate
from bangkok_pipeline.devtools.sample import keep_first_days
from bangkok_pipeline_tests.conftest import new_database
from bangkok_pipeline_tests.hosted.server import SupabaseLikeServer

pytestmark = pytest.mark.integration


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from bangkok_pipeline.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=600,
    )


def test_migrate_load_with_defects_health_and_backup_on_a_supabase_like_project(
    supabase_server: SupabaseLikeServer, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    manifest = generate(source, [Month(2019, 2)], seed=5, defects=True)
    for path in source.glob("*Floor*.csv"):
        keep_first_days(path, 2)
    (source / "manifest.json").unlink()
    assert manifest["files"]
    with new_database(supabase_server.url(), migrate=False) as url:
        env = {
            "DATABASE_URL": url,
            "BANGKOK_HOME": str(tmp_path / "home"),
            "DAGSTER_HOME": "",
            "BANGKOK_DAGSTER_PG_URL": "",
        }
        migrate = _cli("db", "migrate", env=env)
        assert migrate.returncode == 0, migrate.stderr
        load = _cli("load", "--source", str(source), "--months", "2019-02", env=env)
        assert load.returncode == 0, load.stdout + load.stderr
        assert "ok   2019-02:" in load.stdout
        with psycopg.connect(url) as conn:
            assert conn.info.parameter_status("is_superuser") == "off"
            readings = conn.execute("SELECT count(*) FROM sensor_readings").fetchone()
            quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()
            ledger = conn.execute("SELECT bool_and(matches) FROM reconciliation").fetchone()
        assert readings and readings[0] > 100_000
        assert quarantined and quarantined[0] > 0, "the defects were set aside, not loaded"
        assert ledger == (True,)

        health = _cli("health", "--json", env=env)
        findings = {f["concern"]: f for f in json.loads(health.stdout)["findings"]}
        assert findings["access"]["status"] == "ok", findings["access"]
        assert "service_role" in findings["access"]["message"]
        assert findings["migrations"]["status"] == "ok"

        backup = _cli("db", "backup", "--out", str(tmp_path / "project.dump"), env=env)
        assert backup.returncode == 0, backup.stderr
        assert (tmp_path / "project.dump").stat().st_size > 0
