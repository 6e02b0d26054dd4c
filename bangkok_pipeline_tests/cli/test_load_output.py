"""`load`'s output: a progress bar naming the month and step on a terminal, one line per month,
a table at the end, and `--json` for scripts."""

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest


def _on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """What the command writes to a 120-column terminal (stdout and stderr, as a user sees it)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the command
        os.execve(sys.executable, [sys.executable, "-c", _MAIN, *args], env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    out = b""
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        out += data
    os.waitpid(pid, 0)
    return out.decode(errors="replace")


_MAIN = "from bangkok_pipeline.cli.main import main; main()"


@pytest.mark.integration
def test_load_shows_each_step_live_then_a_table_and_json_for_scripts(
    migrated_url: str, tiny_source: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "DATABASE_URL": migrated_url, "BANGKOK_HOME": str(tmp_path / "home")}
    for name in ("DAGSTER_HOME", "BANGKOK_DAGSTER_PG_URL", "CUBEMS_SOURCE_DIR"):
        env.pop(name, None)
    seen = _on_a_terminal(["load", "--source", str(tiny_source)], env)
    for step in ("raw_readings", "validated_readings", "load_month"):
        assert f"2019-03 {step}" in seen, seen  # the bar names the month and step under way
    table = [line for line in seen.splitlines() if line.startswith(("month ", "total "))]
    assert len(table) == 2 and "2/2 ok" in table[1], seen

    scripted = subprocess.run(
        [sys.executable, "-c", _MAIN, "load", "--source", str(tiny_source), "--json"]
        + ["--months", "2019-03"],  # reloaded: one month is enough for the document
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert scripted.returncode == 0, scripted.stderr
    document = json.loads(scripted.stdout)  # stdout holds the JSON only
    assert [m["month"] for m in document["months"]] == ["2019-03"]
    assert document["failed"] == [] and all(m["readings"] > 0 for m in document["months"])
