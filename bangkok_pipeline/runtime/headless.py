"""Materialize month partitions through Dagster from the command line, as the UI would.

The runs go through the `ingest_month` job of the project's Definitions against the Dagster
instance it is given (for the CLI: the PostgreSQL-backed one, so runs, events and asset metadata
show in the UI). Each month runs in a fresh child process: a month's load peaks near
500 MB, and memory the allocators keep after one month must not pile up over eighteen.

The child belongs to the command: it dies with it (even when the command is SIGKILLed), SIGINT
and SIGTERM of the command stop it first, and whatever goes wrong in it comes back as one line.
Each run is tagged with the process executing it (host, pid, start time). A run whose process is
gone keeps its slot in the `bangkok_database` pool, and Dagster would make every later load wait
for it forever: `sweep_abandoned_runs` marks such runs failed and frees their slots.
"""

import logging
import multiprocessing
import os
import re
import signal
import sys
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext, SpawnProcess
from pathlib import Path
from types import FrameType
from typing import Any

import dagster as dg
import psycopg
from dagster_shared.error import SerializableErrorInfo
from sqlalchemy.engine import make_url

from bangkok_pipeline.core import settings
from bangkok_pipeline.core.failures import (
    Link,
    exception_links,
    first_line,
    strip_class,
    summarize,
)
from bangkok_pipeline.db.connection import describe
from bangkok_pipeline.db.queries import query
from bangkok_pipeline.defs.ingestion.partitions import add_building_partitions, partition_key
from bangkok_pipeline.runtime.instance import STORAGE_URL_VARIABLE, DagsterStorage, open_instance
from bangkok_pipeline.runtime.processes import (
    ProcessIdentity,
    alive_since,
    die_with_parent,
    signals_handled,
)
from bangkok_pipeline.source.layout import BUILDING

HOST_TAG = "bangkok/host"
PID_TAG = "bangkok/pid"
PROCESS_START_TAG = "bangkok/process_start"
_UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
# Dagster's console events (warnings, and errors with their traces) go to the month's log file,
# or to the terminal with --verbose; the command itself prints one line per month.
_QUIET = {"console": {"config": {"log_level": "WARNING"}}}
_MAX_WARNINGS = 5
_STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class MonthOutcome:
    month: str
    success: bool
    run_id: str
    summary: str  # one line: what was loaded, or the cause of the failure
    peak_rss_mb: float
    warnings: tuple[str, ...] = ()  # one line each, from the run's warning logs
    detail: str = ""  # the trace behind a failure, for --verbose
    readings: int = 0  # loaded, with the next two from the load log (0 when it failed)
    quarantined: int = 0
    database_s: float = 0.0


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; raised in the main thread inside `interruptible()`.

    From `materialize_months` it also says which month was stopped and whether that month's
    load had committed before its process was stopped.
    """

    def __init__(
        self,
        signum: int,
        month: str | None = None,
        loaded: bool = False,
        outcomes: Sequence[MonthOutcome] = (),
        planned: int = 0,
    ) -> None:
        super().__init__(signum)
        self.signum = signum
        self.month = month
        self.loaded = loaded
        self.outcomes = list(outcomes)
        self.planned = planned

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def explain(self) -> str:
        """One line for the person at the terminal."""
        name = signal.Signals(self.signum).name
        done = sum(1 for o in self.outcomes if o.success) + (1 if self.loaded else 0)
        if self.month is None:
            if not self.planned:
                return f"interrupted by {name} before loading"
            return f"interrupted by {name} between months; {done} of {self.planned} month(s) loaded"
        state = (
            f"{self.month} had been loaded just before"
            if self.loaded
            else f"{self.month} keeps its previous data (a month's load is all or nothing)"
        )
        return (
            f"interrupted by {name} while loading {self.month}: stopped its process; {state}; "
            f"{done} of {self.planned} month(s) loaded"
        )


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def interruptible() -> AbstractContextManager[None]:
    """SIGINT and SIGTERM raise `Interrupted` (main thread only; elsewhere a no-op)."""
    return signals_handled(_raise_interrupted)


def _signals_ignored() -> AbstractContextManager[None]:
    """A second Ctrl-C must not cut the clean-up after the first one short (main thread only)."""
    return signals_handled(signal.SIG_IGN)


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Block SIGINT while a child starts: the child inherits the mask and never sees Ctrl-C
    (the terminal sends it to the whole process group); stopping the child is ours to do."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


# --- the child: one run of `ingest_month` --------------------------------------------------------


@dataclass(frozen=True)
class _MonthRequest:
    building: str  # its name: the building dimension of the partition
    month: str
    run_id: str
    database_url: str
    storage: DagsterStorage | None  # None: an ephemeral instance
    log_path: str | None  # where the child's output goes; None: the terminal (--verbose)
    source: str  # CU-BEMS's CSV directory, as the `source` resource's config
    allow_shrink: bool

    def run_config(self) -> dict[str, Any]:
        return {
            "loggers": _QUIET,
            "resources": {"source": {"config": {"path": self.source}}},
            "ops": {"load_month": {"config": {"allow_shrink": self.allow_shrink}}},
        }


def run_tags() -> dict[str, str]:
    """Tags naming the process that executes a run, for `sweep_abandoned_runs`."""
    me = ProcessIdentity.current()
    return {HOST_TAG: me.host, PID_TAG: str(me.pid), PROCESS_START_TAG: f"{me.started:.3f}"}


def _peak_mb() -> float:
    """This process's peak RSS in MB (0 where the platform does not report it)."""
    try:
        import resource
    except ImportError:
        return 0.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _redirect_output(path: Path) -> None:
    """Send this process's stdout and stderr (and its children's) to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _month_process(sender: Connection, parent: int, request: _MonthRequest) -> None:
    """The child's entry point: run the month and send back its outcome, whatever happens."""
    die_with_parent(parent)
    try:
        if request.log_path:
            _redirect_output(Path(request.log_path))
        outcome = _run_month(request)
    except BaseException as error:  # noqa: BLE001 - every failure becomes one line
        if request.log_path:
            traceback.print_exc()
        outcome = MonthOutcome(
            request.month,
            False,
            request.run_id,
            summarize(exception_links(error), describe(request.database_url)),
            _peak_mb(),
            detail=traceback.format_exc(),
        )
    sender.send(outcome)
    sender.close()


def _run_month(request: _MonthRequest) -> MonthOutcome:
    from bangkok_pipeline.definitions import defs

    job = defs.resolve_job_def("ingest_month")
    storage = request.storage
    instance = dg.DagsterInstance.ephemeral() if storage is None else open_instance(storage)
    with instance:
        add_building_partitions(instance, [request.building])
        result = job.execute_in_process(
            partition_key=partition_key(request.building, request.month),
            instance=instance,
            raise_on_error=False,
            run_config=request.run_config(),
            run_id=request.run_id,
            tags=run_tags(),
        )
        warnings = _warnings(instance, result.run_id)
    server = describe(request.database_url)
    figures: tuple[int, int, float] = (0, 0, 0.0)
    if result.success:
        try:
            summary, figures = _summary(request.database_url, result.run_id)
            detail = ""
        except psycopg.Error as error:
            cause = summarize(exception_links(error), server)
            summary, detail = f"loaded (no summary: {cause})", traceback.format_exc()
    else:
        summary, detail = _failure(result, server)
    return MonthOutcome(
        request.month,
        result.success,
        result.run_id,
        summary,
        _peak_mb(),
        warnings,
        detail,
        *figures,
    )


def _summary(database_url: str, run_id: str) -> tuple[str, tuple[int, int, float]]:
    """The load's line, and its readings, quarantined cells and database seconds."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(query("select_load_summary"), {"run_id": run_id}).fetchone()
    if row is None:
        return "no load recorded", (0, 0, 0.0)
    loaded, quarantined, lines, seconds = row
    line = (
        f"{loaded:,} readings loaded, {quarantined:,} quarantined, from {lines:,} lines "
        f"(database step {float(seconds):.1f} s)"
    )
    return line, (int(loaded), int(quarantined), float(seconds))


def _error_links(error: SerializableErrorInfo | None) -> list[Link]:
    links: list[Link] = []
    while error is not None and len(links) < 20:
        cls_name = error.cls_name or "Error"
        links.append((cls_name, strip_class(cls_name, error.message)))
        error = error.cause or error.context
    return links


def _failure(result: dg.ExecuteInProcessResult, server: str) -> tuple[str, str]:
    """The first failure of a run in one line (the step, then the cause), and its trace."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data:
            error = event.step_failure_data.error
            user = event.step_failure_data.user_failure_data
            cause = (user.description if user and user.description else None) or summarize(
                _error_links(error), server
            )
            return f"step {event.step_key} failed: {first_line(cause)}", str(error or "")
    for event in result.all_events:
        if event.is_run_failure and event.job_failure_data.error:
            error = event.job_failure_data.error
            return f"the run failed: {summarize(_error_links(error), server)}", str(error)
    return "failed", ""


_PROGRESS_POLL_S = 0.5
# Dagster's warning for each step after a failed one: the failure's line already says it all.
_SKIPPED_AFTER_FAILURE = re.compile(r"Dependencies for step \S+ (failed|were not executed)")


def _warnings(instance: dg.DagsterInstance, run_id: str) -> tuple[str, ...]:
    """The run's own warning logs (not Dagster's events, nor the steps skipped after a failed
    one), one line each, the first few."""
    found = []
    try:
        entries = instance.all_logs(run_id)
    except Exception:  # noqa: BLE001 - warnings are extra; the run's outcome is not theirs
        return ()
    for entry in entries:
        level = entry.level if isinstance(entry.level, int) else logging.getLevelName(entry.level)
        if (
            entry.dagster_event is None
            and isinstance(level, int)
            and level >= logging.WARNING
            and not _SKIPPED_AFTER_FAILURE.match(entry.user_message)
        ):
            found.append(f"{entry.step_key or 'run'}: {first_line(entry.user_message)}")
    if len(found) > _MAX_WARNINGS:
        extra = len(found) - _MAX_WARNINGS
        found = [*found[:_MAX_WARNINGS], f"... and {extra} more (the run's logs in the UI)"]
    return tuple(found)


# --- the parent: one child per month ------------------------------------------------------------


def log_path(month: str, building: str = BUILDING) -> Path:
    """Where a building-month's Dagster output goes when the command is not --verbose."""
    unit = month if building == BUILDING else f"{_file_safe(building)}-{month}"
    return settings.bangkok_home() / "logs" / f"load-{unit}.log"


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _stop(process: SpawnProcess) -> None:
    """Kill the month's process; its load rolls back in the server (all or nothing)."""
    if process.pid is None:  # interrupted before it started
        return
    if process.is_alive():
        process.kill()
    process.join(_STOP_TIMEOUT_S)


@contextmanager
def _allocator_environment() -> Iterator[None]:
    """`settings.ALLOCATOR_ENVIRONMENT` for a child started meanwhile. The spawn start method
    has no per-child environment (it execs with this process's), and jemalloc reads its variable
    from the environment when Polars loads, which the child's first import does; so the
    variables are set while the child starts and restored after (unless the user set them)."""
    added = {k: v for k, v in settings.ALLOCATOR_ENVIRONMENT.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _in_child(
    context: SpawnContext, request: _MonthRequest, step: Callable[[str], None] | None = None
) -> MonthOutcome:
    """Run one month in a fresh child process; on any exception here, stop the child first.
    `step` is told the name of each step the run starts, as it starts (from Dagster's storage)."""
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_month_process,
        args=(sender, os.getpid(), request),
        name=f"bangkok-load-{request.month}",
    )
    try:
        with _sigint_blocked(), _allocator_environment():
            process.start()
        sender.close()
        if step is not None and request.storage is not None:
            _follow_steps(request.storage, request.run_id, receiver, step)
        try:
            outcome: MonthOutcome = receiver.recv()
        except EOFError:
            process.join()
            return MonthOutcome(
                request.month,
                False,
                request.run_id,
                f"its process died ({_exit_text(process.exitcode)})",
                0.0,
            )
        process.join()
        return outcome
    except BaseException:
        with _signals_ignored():
            _stop(process)
        raise
    finally:
        receiver.close()


def _follow_steps(
    storage: DagsterStorage, run_id: str, receiver: Connection, step: Callable[[str], None]
) -> None:
    """Until the child has answered, report each step the run starts (polled twice a second).

    Progress is extra: the first error ends it, and Dagster's warnings while it retries a lost
    connection are silenced (the month's own line reports a server that went away)."""
    logging.disable(logging.WARNING)
    try:
        with suppress(Exception), open_instance(storage) as instance:
            _poll_steps(instance, run_id, receiver, step)
    finally:
        logging.disable(logging.NOTSET)


def _poll_steps(
    instance: dg.DagsterInstance, run_id: str, receiver: Connection, step: Callable[[str], None]
) -> None:
    seen: set[str] = set()
    while not receiver.poll(_PROGRESS_POLL_S):
        records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START)
        for record in records.records:
            key = record.event_log_entry.step_key
            if key and key not in seen:
                seen.add(key)
                step(key)


def _server_answers(database_url: str) -> bool:
    """One quick connection attempt: Dagster's storage (on the same server unless configured
    otherwise) would retry for several seconds, printing a warning each time."""
    try:
        psycopg.connect(database_url, connect_timeout=3).close()
    except psycopg.Error:
        return False
    return True


def _committed(database_url: str, run_id: str) -> bool:
    """Whether the run's load committed (it can just before its process is stopped)."""
    try:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT 1 FROM load_log WHERE run_id = %s AND status = 'succeeded'", (run_id,)
            ).fetchone()
    except psycopg.Error:
        return False
    return row is not None


def materialize_months(
    months: list[str],
    database_url: str,
    source: Path,
    storage: DagsterStorage | None,
    report: Callable[[MonthOutcome], None] = lambda outcome: None,
    verbose: bool = False,
    allow_shrink: bool = False,
    progress: Callable[[str, str], None] | None = None,
    building: str = BUILDING,
) -> list[MonthOutcome]:
    """Run `ingest_month` for each of `building`'s months in order, each in a fresh child process
    (CU-BEMS's reading `source`; another building's, its registered folder), on the Dagster
    instance of `storage` (None: an ephemeral one); report each, and tell `progress` (month,
    step) as each step starts (needs `storage`).

    After a failed month, runs whose process is gone are swept, so that a later month never waits
    for the pool slot of a dead one. `Interrupted` (see `interruptible()`) stops the child, marks
    its run canceled, and is raised again with the month and what was loaded.
    """
    outcomes: list[MonthOutcome] = []
    context = multiprocessing.get_context("spawn")
    for month in months:
        request = _MonthRequest(
            building,
            month,
            str(uuid.uuid4()),
            database_url,
            storage,
            None if verbose else str(log_path(month, building)),
            str(source),
            allow_shrink,
        )
        step = None if progress is None else (lambda key, month=month: progress(month, key))
        try:
            outcome = _in_child(context, request, step)
        except Interrupted as stop:
            with _signals_ignored():
                loaded = _committed(database_url, request.run_id)
                if storage is not None and _server_answers(database_url):
                    _release_quietly(
                        storage,
                        request.run_id,
                        f"interrupted by {signal.Signals(stop.signum).name}: "
                        "bangkok-pipeline load stopped the process executing this run",
                    )
            raise Interrupted(stop.signum, month, loaded, outcomes, len(months)) from None
        try:
            outcomes.append(outcome)
            report(outcome)
            if not outcome.success and storage is not None and _server_answers(database_url):
                with suppress(Exception), open_instance(storage) as instance:
                    sweep_abandoned_runs(instance)  # a dead run's slot would block the next month
        except Interrupted as stop:
            raise Interrupted(stop.signum, None, False, outcomes, len(months)) from None
    return outcomes


# --- runs whose process is gone -----------------------------------------------------------------


@dataclass(frozen=True)
class SweptRun:
    run_id: str
    line: str  # what was done, for the terminal


def _storage_is_local(instance: dg.DagsterInstance) -> bool:
    """Whether Dagster's storage is reached over a Unix socket: then every run in it ran on
    this host (the embedded server listens on no TCP port)."""
    url = getattr(instance.run_storage, "postgres_url", None) or os.environ.get(
        STORAGE_URL_VARIABLE
    )
    if not isinstance(url, str) or not url:
        return False
    parsed = make_url(url)
    return parsed.host is None and str(parsed.query.get("host", "")).startswith("/")


def _executing_process(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str | None:
    """`process N` if the process executing `run` is known to be gone from this host, else None
    (alive, on another host, or unknown)."""
    tags = run.tags
    if PID_TAG in tags and HOST_TAG in tags:
        identity = ProcessIdentity(
            tags[HOST_TAG], int(tags[PID_TAG]), float(tags.get(PROCESS_START_TAG, "0"))
        )
        if not identity.is_local or identity.is_alive():
            return None
        return f"process {identity.pid}"
    if not _storage_is_local(instance):
        return None
    # Runs launched by the daemon or the UI: the run worker reports its pid in an engine event
    # ("Started process for run"; in-process execution: "Executing steps in process").
    for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        pid = event.engine_event_data.metadata.get("pid") if event else None
        if pid is not None:
            number = int(str(pid.value))
            return None if alive_since(number, entry.timestamp) else f"process {number}"
    return None


def _free_slots(instance: dg.DagsterInstance, run_id: str) -> None:
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        storage.free_concurrency_slots_for_run(run_id)


def _release(instance: dg.DagsterInstance, run: dg.DagsterRun, message: str) -> None:
    """Finish an unfinished run from outside (canceled if it was being canceled, else failed)
    and free its pool slots."""
    if run.status == dg.DagsterRunStatus.CANCELING:
        instance.report_run_canceled(run, message)
    else:
        instance.report_run_failed(run, message)
    _free_slots(instance, run.run_id)


def _describe_run(run: dg.DagsterRun) -> str:
    partition = run.tags.get("dagster/partition")
    return f"run {run.run_id[:8]} ({run.job_name}{' ' + partition if partition else ''})"


def sweep_abandoned_runs(instance: dg.DagsterInstance) -> list[SweptRun]:
    """Mark failed every unfinished run whose executing process is gone from this host, and free
    the pool slots of those runs and of finished runs that still hold some. One line per run.

    Runs of `load` carry the tags of their process; other runs (daemon, UI) are judged by the pid
    their run worker reported, and only when Dagster's storage is local to this host.
    """
    swept = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=_UNFINISHED)):
        gone = _executing_process(instance, run)
        if gone is None:
            continue
        _release(
            instance,
            run,
            f"The {gone} that executed this run is gone (killed or crashed); "
            "bangkok-pipeline marked the run finished and freed its pool slots.",
        )
        swept.append(
            SweptRun(
                run.run_id,
                f"swept {_describe_run(run)}: its {gone} is gone; "
                "marked it failed and freed its pool slots",
            )
        )
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        holding = storage.get_concurrency_run_ids() - {s.run_id for s in swept}
        for run_id in sorted(holding):
            finished = instance.get_run_by_id(run_id)
            if finished is not None and finished.is_finished:
                _free_slots(instance, run_id)
                swept.append(
                    SweptRun(
                        run_id, f"freed the pool slots still held by {_describe_run(finished)}"
                    )
                )
    return swept


def _release_quietly(storage: DagsterStorage, run_id: str, message: str) -> None:
    """Finish one run stopped by this command, if Dagster's storage answers (else the next
    sweep does it)."""
    with suppress(Exception), open_instance(storage) as instance:
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            instance.report_run_canceled(run, message)
            _free_slots(instance, run_id)
