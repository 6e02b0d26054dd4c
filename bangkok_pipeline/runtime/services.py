"""The Dagster webserver and daemon as child processes of one foreground command.

`bangkok-pipeline up` needs what `dagster dev` does, but with this project's instance and without
its private shutdown pipe: start both with the same environment, say when the UI answers, notice
when either dies (and show why, from its log), and stop both together on Ctrl-C or SIGTERM. Each
child leads its own process group, so stopping it also stops the code servers it spawned.
"""

import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from bangkok_pipeline.core import settings
from bangkok_pipeline.runtime.processes import signals_handled

DEFINITIONS_MODULE = "bangkok_pipeline.definitions"
STOP_TIMEOUT_S = 15.0
READY_TIMEOUT_S = 180.0


class ServiceError(RuntimeError):
    """A child process could not start, died, or never answered; the message says which and why."""


def workspace_args() -> list[str]:
    """`-w workspace.yaml` in a checkout; the module itself for an installed wheel (no yaml)."""
    workspace = settings.PACKAGE_DIR.parent / "workspace.yaml"
    return ["-w", str(workspace)] if workspace.is_file() else ["-m", DEFINITIONS_MODULE]


def _executable(name: str) -> str:
    """The console script beside this interpreter, so an unactivated venv still finds it."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if not found:
        raise ServiceError(f"{name} not found beside {sys.executable} or on PATH")
    return found


@dataclass
class Service:
    """One child process whose combined output goes to `log`."""

    name: str
    argv: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, env: Mapping[str, str]) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,
            )

    def exit_code(self) -> int | None:
        """None while running (or never started)."""
        return self.process.poll() if self.process else None

    def tail(self, lines: int = 25) -> str:
        if not self.log.exists():
            return ""
        text = self.log.read_text(errors="replace").rstrip().splitlines()
        return "\n".join(text[-lines:])

    def died(self) -> str:
        """Why it stopped, with the last lines of its log, for the person at the terminal."""
        return (
            f"{self.name} exited with code {self.exit_code()}; last lines of {self.log}:\n"
            f"{self.tail()}"
        )

    def interrupt(self) -> None:
        """SIGINT to its whole process group: Dagster shuts down cleanly on it."""
        if self.process is not None:
            _signal_group(self.process.pid, signal.SIGINT)

    def wait_stopped(self, deadline: float) -> None:
        """Wait for the group to be gone until `deadline` (monotonic), then SIGKILL what is left."""
        if self.process is None:
            return
        group = self.process.pid
        while _group_alive(group, self.process):
            if time.monotonic() > deadline:
                _signal_group(group, signal.SIGKILL)
                break
            time.sleep(0.1)
        self.process.wait()


def stop_all(services: Sequence[Service], timeout: float = STOP_TIMEOUT_S) -> None:
    """Interrupt every service at once, then wait for all of them (one shared deadline)."""
    for service in services:
        service.interrupt()
    deadline = time.monotonic() + timeout
    for service in services:
        service.wait_stopped(deadline)


def _signal_group(group: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(group, sig)


def _group_alive(group: int, leader: subprocess.Popen[bytes]) -> bool:
    """Whether any member is left; reaps the leader first, since a zombie still counts."""
    leader.poll()
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now, for a server started next (a child binds it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def ensure_port_free(host: str, port: int) -> None:
    """Refuse early: a UI already on the port would answer our readiness poll in its place."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ServiceError(
                f"cannot listen on {host}:{port} ({error.strerror}); choose another --port"
            ) from None


def webserver(host: str, port: int, log_dir: Path) -> Service:
    argv = [_executable("dagster-webserver"), *workspace_args(), "-h", host, "-p", str(port)]
    return Service("dagster-webserver", argv, log_dir / "webserver.log")


def daemon(log_dir: Path) -> Service:
    argv = [_executable("dagster-daemon"), "run", *workspace_args()]
    return Service("dagster-daemon", argv, log_dir / "daemon.log")


_WILDCARDS = {"0.0.0.0", "::", ""}


def ui_url(host: str, port: int) -> str:
    """Where this machine reaches the UI; a wildcard bind is reached through loopback."""
    reachable = "127.0.0.1" if host in _WILDCARDS else host
    return f"http://{reachable}:{port}"


def public_urls(host: str, port: int) -> str:
    """Where people reach the UI, for the line `up` prints once it answers."""
    if host in _WILDCARDS:
        return f"http://{socket.getfqdn()}:{port} (all interfaces; here: {ui_url(host, port)})"
    return ui_url(host, port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, port: int) -> str | None:
    """The warning for a UI reachable from other machines: Dagster's UI has no login."""
    if _is_loopback(host):
        return None
    where = "every network interface" if host in _WILDCARDS else host
    return (
        f"warning: the Dagster UI listens on {where}, port {port}, with no authentication: "
        "anyone who can reach it can launch and cancel runs, change schedules and sensors, and "
        "read run logs. Put it behind an authenticating reverse proxy (README: Exposing the UI), "
        "or keep --host 127.0.0.1 and use an SSH tunnel"
    )


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def interrupt_on_sigterm() -> AbstractContextManager[None]:
    """Let SIGTERM stop the foreground command the way Ctrl-C does (as KeyboardInterrupt)."""
    return signals_handled(_raise_interrupt, (signal.SIGTERM,))


@contextmanager
def running(services: Sequence[Service], env: Mapping[str, str]) -> Iterator[None]:
    """Start the services; stop every one of them on the way out, whatever happened."""
    started: list[Service] = []
    try:
        for service in services:
            service.start(env)
            started.append(service)
        yield
    finally:
        with signals_handled(signal.SIG_IGN):  # a second Ctrl-C must not orphan a child
            stop_all(started)


def wait_until_answering(
    url: str, service: Service, timeout: float = READY_TIMEOUT_S, others: Sequence[Service] = ()
) -> None:
    """Poll `url/server_info` until it answers; fail early if any service dies meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for watched in (service, *others):
            if watched.exit_code() is not None:
                raise ServiceError(watched.died())
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise ServiceError(
        f"{service.name} did not answer at {url} within {timeout:.0f} s; "
        f"last lines of {service.log}:\n{service.tail()}"
    )


def watch(services: Sequence[Service], interval: float = 0.5) -> None:
    """Block while every service runs; raise ServiceError when one dies. Ctrl-C (and SIGTERM
    under `interrupt_on_sigterm`) ends the wait as KeyboardInterrupt."""
    while True:
        for service in services:
            if service.exit_code() is not None:
                raise ServiceError(service.died())
        time.sleep(interval)
