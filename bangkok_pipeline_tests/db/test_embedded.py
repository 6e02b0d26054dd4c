"""The embedded server: start on demand, reuse, concurrent starters, stop."""

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from bangkok_pipeline.db.embedded import EmbeddedServer

pytestmark = pytest.mark.integration

_START = (
    "import sys; from pathlib import Path;"
    "from bangkok_pipeline.db.embedded import EmbeddedServer;"
    "print(EmbeddedServer(Path(sys.argv[1])).ensure_running())"
)


def _postmaster_pid(server: EmbeddedServer) -> int:
    return int((server.pgdata / "postmaster.pid").read_text().split()[0])


def test_start_reuse_stop(tmp_path: Path) -> None:
    server = EmbeddedServer(tmp_path / "home")
    url = server.ensure_running()
    pid = _postmaster_pid(server)
    assert server.ensure_running() == url
    assert _postmaster_pid(server) == pid, "a second start must reuse the running server"
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT current_database(), current_setting('server_version_num')::int, "
            "current_setting('shared_preload_libraries')"
        ).fetchone()
    assert row is not None
    assert row == ("bangkok", row[1], "pg_stat_statements") and row[1] >= 150000
    with psycopg.connect(server.url("dagster")) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert server.stop() is True
    assert server.is_running() is False
    assert server.stop() is False
    assert server.ensure_running() == url, "a stopped server starts again with its data"
    server.stop()


def test_two_processes_starting_at_once_share_one_server(tmp_path: Path) -> None:
    home = tmp_path / "home"
    starters = [
        subprocess.Popen(
            [sys.executable, "-c", _START, str(home)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [starter.communicate(timeout=120) for starter in starters]
    assert [s.returncode for s in starters] == [0, 0], results
    urls = {out.strip() for out, _ in results}
    assert len(urls) == 1
    server = EmbeddedServer(home)
    with psycopg.connect(urls.pop()) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = 'bangkok'"
        ).fetchone() == (1,)
    server.stop()


def test_long_home_path_uses_a_short_socket_directory(tmp_path: Path) -> None:
    server = EmbeddedServer(tmp_path / ("deep" * 30) / "home")
    assert len(str(server.socket_dir)) < 60
    url = server.ensure_running()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    server.stop()
