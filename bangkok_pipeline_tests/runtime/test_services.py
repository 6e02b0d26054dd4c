"""Child-process handling behind `bangkok-pipeline up`, with stand-in Python children: a death
is reported with its log's last lines, a stop reaches the whole process group, a taken port is
refused up front, an installed wheel (no workspace.yaml) loads the module, a UI reachable from
other machines is announced with its real URL and a warning. The real webserver is exercised in
test_ui.py."""

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from bangkok_pipeline.core import settings
from bangkok_pipeline.runtime import services
from bangkok_pipeline.runtime.services import (
    Service,
    ServiceError,
    ensure_port_free,
    running,
    stop_all,
    watch,
    workspace_args,
)

DEAF_TO_SIGINT = "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "


def _gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for a parent that is not ours to reap."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_service_that_dies_is_reported_with_the_last_lines_of_its_log(tmp_path: Path) -> None:
    script = "print('starting'); print('cannot bind: address in use', flush=True); exit(3)"
    worker = Service("worker", [sys.executable, "-c", script], tmp_path / "worker.log")
    with pytest.raises(ServiceError) as raised, running([worker], os.environ):
        watch([worker], interval=0.05)
    message = str(raised.value)
    assert message.startswith(f"worker exited with code 3; last lines of {worker.log}:")
    assert message.endswith("starting\ncannot bind: address in use")


def test_stop_kills_the_whole_group_when_it_ignores_the_interrupt(tmp_path: Path) -> None:
    grandchild = f"{DEAF_TO_SIGINT}import time; time.sleep(60)"
    script = (
        f"{DEAF_TO_SIGINT}import subprocess, sys; "
        f"child = subprocess.Popen([sys.executable, '-c', {grandchild!r}]); "
        "print(child.pid, flush=True); child.wait()"
    )
    parent = Service("parent", [sys.executable, "-c", script], tmp_path / "parent.log")
    parent.start(os.environ)
    deadline = time.monotonic() + 10
    while not parent.tail() and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild_pid = int(parent.tail())
    stop_all([parent], timeout=0.5)
    assert parent.exit_code() == -9
    deadline = time.monotonic() + 5
    while not _gone(grandchild_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(grandchild_pid)


def test_a_port_in_use_is_refused_before_anything_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServiceError, match=rf"cannot listen on 127\.0\.0\.1:{port} "):
            ensure_port_free("127.0.0.1", port)


def test_without_a_workspace_file_the_definitions_module_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wheel install has no workspace.yaml beside the package."""
    assert workspace_args() == ["-w", str(settings.PACKAGE_DIR.parent / "workspace.yaml")]
    monkeypatch.setattr(settings, "PACKAGE_DIR", tmp_path / "site-packages" / "bangkok_pipeline")
    assert workspace_args() == ["-m", "bangkok_pipeline.definitions"]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "ui.example.org"])
def test_a_ui_reachable_from_other_machines_gets_its_real_url_and_a_warning(host: str) -> None:
    warning = services.exposure_warning(host, 3000)
    assert warning is not None and "no authentication" in warning
    assert "reverse proxy" in warning
    url = services.public_urls(host, 3000)
    if host in {"0.0.0.0", "::"}:
        assert url.startswith(f"http://{socket.getfqdn()}:3000") and "all interfaces" in url
    else:
        assert url == f"http://{host}:3000"


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.5"])
def test_a_loopback_ui_gets_no_warning(host: str) -> None:
    assert services.exposure_warning(host, 3000) is None
