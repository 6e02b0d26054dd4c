"""`bangkok-pipeline load` under real crashes and signals, on its own embedded server.

One base load of a tiny month is shared; every test leaves that month whole. A load is held at a
known point with real locks (a reader of the month holds up the swap; a lock on `zones` holds up
the raw step's sensor registration) or, for the validated step, frozen with SIGSTOP as soon as the
Dagster event log shows the step started. Then the command is killed or signalled.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import psutil
import psycopg
import pytest

from bangkok_pipeline.core.failures import exception_links, summarize
from bangkok_pipeline.db.connection import with_database
from bangkok_pipeline.db.embedded import POSTGRES_BIN_PATH, SERVICE_USER
from bangkok_pipeline.runtime.processes import ProcessIdentity
from bangkok_pipeline_tests.conftest import cubems

MONTH = "2019-02"
BOUND_S = 120  # a load after a crash must finish within this
WAIT_S = 90  # for a load to reach the point where the test holds it


@dataclass
class Home:
    path: Path
    source: Path
    env: dict[str, str]
    url: str = ""

    @property
    def dagster_url(self) -> str:
        return with_database(self.url, "dagster")

    def load_args(self, *extra: str, month: str = MONTH) -> list[str]:
        return ["load", "--months", month, "--source", str(self.source), "--quiet", *extra]

    def cli(self, *args: str, timeout: float = BOUND_S) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "from bangkok_pipeline.cli.main import main; main()", *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
        )

    def start_load(self) -> subprocess.Popen[str]:
        """`load` of the month in its own process group, as a shell would start it."""
        return subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from bangkok_pipeline.cli.main import main; main()",
                *self.load_args(),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            start_new_session=True,
        )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, tiny_source: Path) -> Iterator[Home]:
    """A private BANGKOK_HOME (embedded server) with the month loaded once."""
    path = tmp_path_factory.mktemp("interruptions") / "home"
    env = {**os.environ, "BANGKOK_HOME": str(path)}
    for name in ("DATABASE_URL", "DAGSTER_HOME", "CUBEMS_SOURCE_DIR", "BANGKOK_DAGSTER_PG_URL"):
        env[name] = ""
    home = Home(path, tiny_source, env)
    try:
        base = home.cli(*home.load_args())
        assert base.returncode == 0, base.stdout + base.stderr
        home.url = home.cli("db", "url").stdout.strip()
        yield home
    finally:
        home.cli("db", "stop")


def _month_state(url: str) -> tuple[int, int, str]:
    """The live partition's oid (a swap replaces it; the default policy loads the month
    compressed), its readings, and the last committed load."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT 'partitions.sensor_readings_days_y2019m02'::regclass::oid::bigint, "
            "(SELECT sum(n) FROM partitions.sensor_readings_days_y2019m02), "
            "(SELECT run_id FROM load_log WHERE to_char(month, 'YYYY-MM') = %s "
            "AND status = 'succeeded' ORDER BY load_id DESC LIMIT 1)",
            (MONTH,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), str(row[2])


class _RunAs(TypedDict, total=False):
    user: str
    group: str
    extra_groups: list[str]


def _as_service_user() -> _RunAs:
    """As root the embedded server runs as its own OS user; so must pg_ctl."""
    if os.geteuid() != 0:
        return {}
    return {"user": SERVICE_USER, "group": SERVICE_USER, "extra_groups": []}


def _assert_month_exact(home: Home, expected_rows: int) -> None:
    """The month is complete as its last load left it, nothing left over from crashes."""
    _, rows, run_id = _month_state(home.url)
    assert rows == expected_rows
    with psycopg.connect(home.url) as conn:
        loaded = conn.execute(
            "SELECT rows_loaded FROM load_log WHERE run_id = %s AND status = 'succeeded'",
            (run_id,),
        ).fetchone()
        leftovers = conn.execute(
            "SELECT count(*) FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'partitions' AND c.relkind = 'r' "
            "AND NOT EXISTS (SELECT 1 FROM pg_inherits AS i WHERE i.inhrelid = c.oid)"
        ).fetchone()
        running = conn.execute("SELECT count(*) FROM load_log WHERE status = 'running'").fetchone()
    assert loaded is not None and loaded[0] == rows > 0
    assert leftovers == (0,) and running == (0,)
    with psycopg.connect(home.dagster_url) as conn:
        held = conn.execute(
            "SELECT count(*) FROM concurrency_slots WHERE run_id IS NOT NULL"
        ).fetchone()
    assert held == (0,)


def _run_of(home: Home, load: subprocess.Popen[str], known: set[str]) -> tuple[str, int]:
    """The Dagster run (not in `known`) that `load` started, and the pid of its month process
    (the command's multiprocessing child)."""
    deadline = time.monotonic() + WAIT_S
    with psycopg.connect(home.dagster_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            found = conn.execute(
                "SELECT run_id FROM runs WHERE NOT run_id = ANY(%s)", (list(known),)
            ).fetchone()
            pid = _month_process(load)
            if found and pid:
                return str(found[0]), pid
            _still_running(load)
            time.sleep(0.05)
    pytest.fail("the load started no run")


def _month_process(load: subprocess.Popen[str]) -> int | None:
    for child in psutil.Process(load.pid).children():
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                return int(child.pid)
        except psutil.Error:
            continue
    return None


def _runs(home: Home) -> set[str]:
    with psycopg.connect(home.dagster_url) as conn:
        return {str(r[0]) for r in conn.execute("SELECT run_id FROM runs").fetchall()}


def _run_status(home: Home, run_id: str) -> str:
    with psycopg.connect(home.dagster_url) as conn:
        row = conn.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,)).fetchone()
    return str(row[0]) if row else "missing"


def _still_running(load: subprocess.Popen[str]) -> None:
    if load.poll() is not None:
        out, err = load.communicate()
        pytest.fail(f"load exited early ({load.returncode}):\n{out}\n{err}")


def _wait_blocked(home: Home, load: subprocess.Popen[str], statement: str) -> None:
    """Until a backend waits for a lock in a statement like `statement`."""
    deadline = time.monotonic() + WAIT_S
    with psycopg.connect(home.url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            if conn.execute(
                "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE %s",
                (f"%{statement}%",),
            ).fetchone():
                return
            _still_running(load)
            time.sleep(0.1)
    pytest.fail(f"the load never waited in {statement!r}")


@contextmanager
def _swap_held(home: Home) -> Iterator[None]:
    """A reader of the month: the load's swap (DETACH) waits for it, its new tables built."""
    reader = psycopg.connect(home.url)
    try:
        reader.execute("SELECT count(*) FROM partitions.sensor_readings_days_y2019m02").fetchone()
        yield
    finally:
        reader.close()  # rolls back; also when the server is gone


@contextmanager
def _raw_held(home: Home) -> Iterator[None]:
    """A lock on `zones`: the raw step waits while registering the first file's sensors."""
    with psycopg.connect(home.url) as holder:
        holder.execute("LOCK TABLE zones IN EXCLUSIVE MODE")
        yield


def _crash(load: subprocess.Popen[str]) -> str:
    """SIGKILL the command's whole process group, as a crash would; its output so far."""
    os.killpg(load.pid, signal.SIGKILL)
    out, _ = load.communicate(timeout=30)
    return out


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pid: int, seconds: float = 5.0) -> float:
    started = time.monotonic()
    while not _gone(pid):
        assert time.monotonic() - started < seconds, f"month process {pid} still runs"
        time.sleep(0.05)
    return time.monotonic() - started


def _validated_event(conn: psycopg.Connection, run_id: str, event: str) -> bool:
    return bool(
        conn.execute(
            "SELECT 1 FROM event_logs WHERE run_id = %s AND step_key = 'validated_readings' "
            "AND dagster_event_type = %s",
            (run_id, event),
        ).fetchone()
    )


def _killed_in_validated(home: Home) -> tuple[str, str]:
    """Freeze a load (SIGSTOP) inside the validated step, which the event log says started, and
    crash it; its run and the output of every attempt. The step takes under a second here: if
    it finished before the stop, try again."""
    outputs = []
    for _ in range(3):
        load = home.start_load()
        run_id, pid = _run_of(home, load, _runs(home))
        deadline = time.monotonic() + WAIT_S
        with psycopg.connect(home.dagster_url, autocommit=True) as conn:
            while not _validated_event(conn, run_id, "STEP_START"):
                assert time.monotonic() < deadline, "the validated step never started"
                _still_running(load)
                time.sleep(0.02)
            os.kill(pid, signal.SIGSTOP)
            caught = not _validated_event(conn, run_id, "STEP_SUCCESS") and not _validated_event(
                conn, run_id, "STEP_FAILURE"
            )
        outputs.append(_crash(load))
        if caught:
            return run_id, "".join(outputs)
    pytest.fail("could not catch the validated step three times")


@pytest.mark.integration
def test_sigkill_in_each_step_never_blocks_the_next_load(home: Home) -> None:
    """Each load below starts after the previous one was SIGKILLed mid-step (the last one in
    the database step, holding the pool slot that used to block every later load forever)."""
    base = _month_state(home.url)
    killed: list[str] = []
    outputs: list[str] = []

    with _raw_held(home):
        load = home.start_load()
        run_id, _ = _run_of(home, load, _runs(home))
        _wait_blocked(home, load, "INSERT INTO zones")
        outputs.append(_crash(load))
        killed.append(run_id)
    assert _month_state(home.url) == base

    run_id, output = _killed_in_validated(home)
    outputs.append(output)
    killed.append(run_id)
    assert _month_state(home.url) == base

    with _swap_held(home):
        load = home.start_load()
        run_id, _ = _run_of(home, load, _runs(home))
        _wait_blocked(home, load, "DETACH PARTITION")
        outputs.append(_crash(load))
        killed.append(run_id)
    assert _month_state(home.url) == base

    started = time.monotonic()
    again = home.cli(*home.load_args())
    elapsed = time.monotonic() - started
    outputs.append(again.stdout)
    assert again.returncode == 0, again.stdout + again.stderr
    assert elapsed < BOUND_S
    # every killed run was swept by the load after it, with one line
    for run_id, later in zip(killed, outputs[1:], strict=True):
        assert f"swept run {run_id[:8]} (ingest_month {cubems(MONTH)})" in later, later
        assert _run_status(home, run_id) == "FAILURE"
    assert f"ok   {MONTH}: " in again.stdout
    _assert_month_exact(home, base[1])


@pytest.mark.integration
def test_sigkill_of_the_command_alone_stops_its_month_process(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The month process dies with the command and its load never commits; the daemon's
    abandoned_runs_sensor (or the next load) then finishes the run and frees its slot."""
    import dagster as dg

    from bangkok_pipeline.defs.ingestion.sensors import abandoned_runs_sensor
    from bangkok_pipeline.runtime.instance import dagster_environment

    base = _month_state(home.url)
    with _swap_held(home):
        load = home.start_load()
        run_id, pid = _run_of(home, load, _runs(home))
        _wait_blocked(home, load, "DETACH PARTITION")
        load.kill()  # the command only, not its group
        load.communicate(timeout=30)
        _wait_gone(pid)
    with psycopg.connect(home.url, autocommit=True) as conn:  # the orphaned backend ends too
        deadline = time.monotonic() + 30
        while conn.execute(
            "SELECT 1 FROM pg_stat_activity WHERE query ILIKE '%DETACH PARTITION%' "
            "AND pid <> pg_backend_pid()"
        ).fetchone():
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert _month_state(home.url) == base
    assert _run_status(home, run_id) == "STARTED"

    monkeypatch.setenv("BANGKOK_HOME", str(home.path))
    for name, value in dagster_environment(home.url).items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.get() as instance:
        result = abandoned_runs_sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(result, dg.SkipReason) and result.skip_message
    assert f"swept run {run_id[:8]} (ingest_month {cubems(MONTH)})" in result.skip_message
    assert _run_status(home, run_id) == "FAILURE"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("sig", "group"),
    [
        (signal.SIGTERM, False),  # `kill PID`, a service manager
        (signal.SIGINT, True),  # Ctrl-C: the terminal signals the whole foreground group
    ],
)
def test_sigterm_and_ctrl_c_stop_the_month_and_say_so(
    home: Home, sig: signal.Signals, group: bool
) -> None:
    base = _month_state(home.url)
    with _swap_held(home):
        load = home.start_load()
        run_id, pid = _run_of(home, load, _runs(home))
        _wait_blocked(home, load, "DETACH PARTITION")
        (os.killpg if group else os.kill)(load.pid, sig)
        out, err = load.communicate(timeout=60)
        _wait_gone(pid, 1.0)
    assert load.returncode == 128 + sig, out + err
    last = out.strip().splitlines()[-1]
    assert last == (
        f"interrupted by {sig.name} while loading {MONTH}: stopped its process; {MONTH} keeps "
        "its previous data (a month's load is all or nothing); 0 of 1 month(s) loaded"
    )
    assert "Traceback" not in out + err and not err.strip()
    assert _month_state(home.url) == base
    assert _run_status(home, run_id) == "CANCELED"


@pytest.mark.integration
def test_a_failing_month_is_one_line_and_its_trace_only_with_verbose(
    home: Home, tmp_path: Path
) -> None:
    broken = tmp_path / "source"  # the month's files, one header with an unnamed column
    shutil.copytree(home.source, broken)
    floor1 = broken / "2019Floor1.csv"
    header, rest = floor1.read_bytes().split(b"\n", 1)
    floor1.write_bytes(header + b",\n" + rest)
    args = home.load_args(month="2019-04")
    args[args.index("--source") + 1] = str(broken)
    args[args.index("--months") + 1] = MONTH
    quiet = home.cli(*args)
    assert quiet.returncode == 1
    fails = [line for line in quiet.stdout.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1 and fails[0].startswith(f"FAIL {MONTH}: step raw_readings failed: ")
    assert "2019Floor1.csv line 1: column" in fails[0] and "has no name" in fails[0]
    assert "details: --verbose" in quiet.stdout.splitlines()[-1]
    assert "Dependencies for step" not in quiet.stdout  # the steps skipped after the failure
    assert not quiet.stderr.strip(), quiet.stderr

    verbose = home.cli(*args, "--verbose")
    assert verbose.returncode == 1
    assert fails[0] in verbose.stdout.splitlines()
    assert "Stack Trace" in verbose.stderr or "Traceback" in verbose.stderr


@pytest.mark.integration
def test_a_full_disk_names_enospc_and_the_layer(home: Home) -> None:
    """The runs' layers on a 64 kB tmpfs: the month fails with the cause and the path."""
    target = home.path / "layers" / "runs"
    target.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(target)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        base = _month_state(home.url)
        result = home.cli(*home.load_args())
    finally:
        subprocess.run(["umount", str(target)], check=True)
    assert result.returncode == 1
    fails = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1, result.stdout
    assert fails[0].startswith(
        f"FAIL {MONTH}: step raw_readings failed: No space left on device: {target / MONTH}/"
    ) and fails[0].endswith("/raw"), fails[0]
    assert not result.stderr.strip()
    assert _month_state(home.url) == base


@pytest.mark.integration
def test_a_server_stopped_mid_load_is_one_fail_line_and_the_rerun_finishes(home: Home) -> None:
    base = _month_state(home.url)
    with _swap_held(home):
        load = home.start_load()
        _run_of(home, load, _runs(home))
        _wait_blocked(home, load, "DETACH PARTITION")
        subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(home.path / "pgdata")]
            + ["stop", "-m", "immediate"],
            check=True,
            capture_output=True,
            cwd="/",
            **_as_service_user(),
        )
        out, err = load.communicate(timeout=BOUND_S)
    assert load.returncode == 1, out + err
    fails = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1, out
    assert fails[0].startswith(f"FAIL {MONTH}: ") and "the database server" in fails[0]
    assert f"(host {home.path / 'pgdata'}" in fails[0]
    assert "Traceback" not in out + err and not err.strip(), err

    started = time.monotonic()
    again = home.cli(*home.load_args())
    assert again.returncode == 0, again.stdout + again.stderr
    assert time.monotonic() - started < BOUND_S
    _assert_month_exact(home, base[1])


def test_a_process_identity_survives_pid_reuse() -> None:
    me = ProcessIdentity.current()
    assert me.is_local and me.is_alive()
    assert not ProcessIdentity(me.host, me.pid, me.started - 60).is_alive()  # same pid, later
    child = subprocess.Popen(["true"])
    child.wait()
    assert not ProcessIdentity(me.host, child.pid, me.started).is_alive()


def test_a_full_disk_is_named_in_one_line() -> None:
    with pytest.raises(OSError) as caught, open("/dev/full", "w") as full:
        full.write("x")
        full.flush()
    assert summarize(exception_links(caught.value)) == "No space left on device"
    try:
        try:
            raise OSError(28, "No space left on device", "/data/layers/raw/2019-02")
        except OSError as error:
            raise RuntimeError("wrapped") from error
    except RuntimeError as wrapped:
        assert summarize(exception_links(wrapped)) == (
            "No space left on device: /data/layers/raw/2019-02"
        )
