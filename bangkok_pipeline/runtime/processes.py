"""Processes that own their work: who runs a job (host, pid, start time), and children that die
with the process that started them.

A pid alone does not identify a process for long: the kernel reuses it. A pid together with the
process's start time does, on one host; that is what a run records about the process executing
it, so that a later command can tell a run in progress from one whose process is gone.
"""

import ctypes
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

import psutil

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_START_TIME_TOLERANCE_S = 1.0  # psutil derives start times from clock ticks since boot


@dataclass(frozen=True)
class ProcessIdentity:
    """One process on one host, robust against pid reuse."""

    host: str
    pid: int
    started: float  # seconds since the epoch, as psutil reports it

    @classmethod
    def current(cls) -> "ProcessIdentity":
        return cls(socket.gethostname(), os.getpid(), psutil.Process().create_time())

    @property
    def is_local(self) -> bool:
        return self.host == socket.gethostname()

    def is_alive(self) -> bool:
        """Whether the process still runs here (a local identity only; a reused pid is not it)."""
        started = _start_time(self.pid)
        return started is not None and abs(started - self.started) < _START_TIME_TOLERANCE_S


def alive_since(pid: int, not_after: float) -> bool:
    """Whether process `pid` runs on this host and started no later than `not_after` (epoch
    seconds): the process that reported itself at that time, not a later one with its pid."""
    started = _start_time(pid)
    return started is not None and started <= not_after + _START_TIME_TOLERANCE_S


def _start_time(pid: int) -> float | None:
    """The start time of a running (not zombie) process, or None."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(process.create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def die_with_parent(parent: int) -> None:
    """In a child process: be killed (SIGKILL) as soon as `parent` dies, even by SIGKILL.

    Linux delivers the signal itself (prctl PR_SET_PDEATHSIG); elsewhere a watchdog thread polls.
    A parent that died before this call is noticed at once.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            _watch_parent(parent)
    else:
        _watch_parent(parent)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


def _watch_parent(parent: int) -> None:
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


@contextmanager
def signals_handled(
    handler: Callable[[int, FrameType | None], Any] | int,
    signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM),
) -> Iterator[None]:
    """`handler` (a function, or `signal.SIG_IGN`) for `signals` during the block; the previous
    handlers after it. Only the main thread may set handlers: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
