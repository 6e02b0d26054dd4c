"""`bangkok-pipeline bench api`: latency of the query API under concurrency, with and without RLS.

pgbench (shipped with the embedded server) runs one custom script per API function. Each
transaction is what PostgREST sends: BEGIN, the claim that `auth.uid()` reads, the call, COMMIT;
sensors, days and months are drawn at random over the loaded range, so caches do not flatter the
numbers. Every script runs as two logins:

- `api`: a Professional app user on a login granted only `bangkok_api` (policies on);
- `owner`: a login granted `bangkok_owner`, the tables' owner, which passes RLS through its
  `service` policy (USING true): the baseline.

Per-transaction latencies come from `pgbench --log`; the first transaction of each connection
(catalog and plan caches of a new session) is left out, since an API keeps pooled connections.
The two identities take turns in short slices, so other load on the machine falls on both.
The run creates a tenant, a subscription and two login roles, and removes them afterwards.
"""

import os
import re
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bangkok_pipeline.core.settings import BANGKOK_TZ
from bangkok_pipeline.db.embedded import POSTGRES_BIN_PATH
from bangkok_pipeline.db.queries import query
from bangkok_pipeline.warehouse import access

PGBENCH = POSTGRES_BIN_PATH / "pgbench"
IDENTITIES = ("api", "owner")

# name -> pgbench meta-commands; the call is sql/queries/select_api_<name>.sql, in pgbench's
# `:variable` syntax. Variables from `_Range` are passed with -D.
SCRIPTS: dict[str, tuple[str, ...]] = {
    "latest_readings": (),
    "series_raw_day": (
        r"\set sensor random(:sensor_lo, :sensor_hi)",
        r"\set t :t0 + 86400 * random(0, :days - 1)",
        r"\set t_end :t + 86400",
    ),
    "series_hour_week": (
        r"\set sensor random(:sensor_lo, :sensor_hi)",
        r"\set t :t0 + 86400 * random(0, greatest(:days - 7, 0))",
        r"\set t_end :t + 7 * 86400",
    ),
    "series_hour_month": (
        r"\set sensor random(:sensor_lo, :sensor_hi)",
        r"\set t :t0 + 86400 * random(0, greatest(:days - 30, 0))",
        r"\set t_end :t + 30 * 86400",
    ),
    "daily_zone_energy_month": (r"\set m random(0, :months - 1)", r"\set m_end :m + 1"),
    "building_daily_totals_month": (r"\set m random(0, :months - 1)", r"\set m_end :m + 1"),
    "zone_comfort_month": (r"\set m random(0, :months - 1)", r"\set m_end :m + 1"),
}
# p95 targets in ms (issue 5); the RLS overhead target applies to every function.
TARGETS_MS = {
    "latest_readings": 50.0,
    "series_raw_day": 50.0,
    "series_hour_month": 50.0,
    "daily_zone_energy_month": 500.0,
}
OVERHEAD_TARGET = 0.20


class ApiBenchError(RuntimeError):
    """The benchmark cannot run here (no data, no pgbench, a failing script); nothing is left."""


@dataclass(frozen=True)
class _Range:
    """What the scripts draw from: one building's sensors, the loaded days and months."""

    building: int
    sensor_lo: int
    sensor_hi: int
    first_day: date
    days: int
    months: int

    def variables(self) -> dict[str, str]:
        midnight = datetime.combine(self.first_day, time(), BANGKOK_TZ)
        return {
            "building": str(self.building),
            "sensor_lo": str(self.sensor_lo),
            "sensor_hi": str(self.sensor_hi),
            "t0": str(int(midnight.timestamp())),
            "days": str(self.days),
            "m0": self.first_day.replace(day=1).isoformat(),
            "months": str(self.months),
        }


@dataclass(frozen=True)
class Result:
    function: str
    identity: str
    clients: int
    transactions: int
    tps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


def percentile(sorted_values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), int(-(-share * len(sorted_values) // 1))))
    return sorted_values[rank - 1]


def read_latencies(log_files: Sequence[Path]) -> list[float]:
    """Milliseconds per transaction from pgbench --log files, without each connection's first."""
    latencies = []
    for path in log_files:
        for line in path.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[1] != "0":
                latencies.append(int(fields[2]) / 1000)
    return sorted(latencies)


def _data_range(conn: psycopg.Connection) -> _Range:
    building = conn.execute(query("select_largest_building_sensors")).fetchone()
    days = conn.execute("SELECT min(day), max(day) FROM daily_sensor_stats").fetchone()
    if not building or not days or days[0] is None:
        raise ApiBenchError("no loaded month to measure: load some months first")
    first, last = days
    months = (last.year - first.year) * 12 + last.month - first.month + 1
    return _Range(building[0], building[1], building[2], first, (last - first).days + 1, months)


def _script(name: str) -> str:
    lines = [
        *SCRIPTS[name],
        "BEGIN;",
        "SELECT set_config('request.jwt.claims', :claims, true);",
        _call(name),
        "COMMIT;",
    ]
    return "\n".join(lines) + "\n"


def _call(name: str) -> str:
    """The API call of a script, with pgbench's `:variable`s."""
    return query(f"select_api_{name}").strip()


def _pgbench(
    login_url: str,
    password: str,
    script: Path,
    variables: dict[str, str],
    clients: int,
    seconds: int,
    log_prefix: Path | None,
) -> None:
    params = conninfo_to_dict(login_url)
    params.pop("password", None)  # through the environment, not the process list
    args = [
        str(PGBENCH),
        "--no-vacuum",
        "--protocol=prepared",
        f"--client={clients}",
        f"--jobs={min(clients, 4)}",
        f"--time={seconds}",
        f"--file={script}",
        *[f"--define={name}={value}" for name, value in variables.items()],
    ]
    if log_prefix is not None:
        args += ["--log", f"--log-prefix={log_prefix}"]
    args.append(make_conninfo("", **params))
    result = subprocess.run(
        args,
        capture_output=True,
        text=True,
        env={**os.environ, "PGPASSWORD": password},
        cwd=script.parent,
    )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise ApiBenchError(f"pgbench failed on {script.name}: {' | '.join(tail)}")


@contextmanager
def _bench_identity(url: str, tag: str, role: str) -> Iterator[tuple[_Range, uuid.UUID]]:
    """A tenant with a Professional subscription to the measured building and one analyst,
    pinned to the login `bangkok_bench_{role}_{tag}`; all removed afterwards."""
    with psycopg.connect(url, autocommit=True) as conn:
        data = _data_range(conn)
        tenant = access.create_tenant(conn, f"bench {tag}")
        try:
            user = access.add_user(
                conn, tenant, "analyst", f"bench-{tag}@example.org", f"bangkok_bench_{role}_{tag}"
            )
            access.subscribe(conn, tenant, data.building, "professional")
            yield data, user
        finally:
            conn.execute("DELETE FROM tenants WHERE tenant_id = %s", (tenant,))


@contextmanager
def _logins(url: str, tag: str, roles: dict[str, str]) -> Iterator[dict[str, access.Login]]:
    """Login roles `bangkok_bench_{name}_{tag}` granted their role; dropped afterwards."""
    made: dict[str, access.Login] = {}
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            for name, role in roles.items():
                made[name] = access.create_login(conn, f"bangkok_bench_{name}_{tag}", role)
        yield made
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            for login in made.values():
                access.drop_login(conn, login.name)


def run_api_bench(
    url: str,
    clients: Sequence[int] = (1, 8, 16),
    seconds: int = 10,
    warmup: int = 3,
    functions: Sequence[str] = tuple(SCRIPTS),
    progress: Callable[[Result], None] | None = None,
    rounds: int = 3,
) -> list[Result]:
    """Measure every function x identity x client count on the database at `url`, whose user
    must be able to create roles and act as bangkok_owner (the migrator, a superuser).
    `seconds` per function, identity and client count, taken in `rounds` alternating slices."""
    if not PGBENCH.exists():
        raise ApiBenchError(f"pgbench not found at {PGBENCH}")
    unknown = sorted(set(functions) - set(SCRIPTS))
    if unknown:
        raise ApiBenchError(f"unknown function(s) {unknown}; known: {', '.join(SCRIPTS)}")
    tag = uuid.uuid4().hex[:8]
    roles = {"api": access.API_ROLE, "owner": access.OWNER_ROLE}
    results = []
    with (
        _logins(url, tag, roles) as logins,
        _bench_identity(url, tag, "api") as (data, user),
        tempfile.TemporaryDirectory(prefix="bangkok-bench-api-") as folder,
    ):
        variables = {**data.variables(), "claims": access.claims(user)}
        work = Path(folder)
        for name in functions:
            script = work / f"{name}.sql"
            script.write_text(_script(name))
            for identity in IDENTITIES if warmup else ():
                login = logins[identity]
                _pgbench(login.url(url), login.password, script, variables, 2, warmup, None)
            # The identities take turns in short slices, so background load on the machine
            # falls on both alike; each identity's slices are pooled.
            for count in clients:
                pooled: dict[str, list[float]] = {identity: [] for identity in IDENTITIES}
                for turn in range(rounds):
                    for identity in IDENTITIES:
                        login = logins[identity]
                        prefix = work / f"{name}-{identity}-{count}-{turn}"
                        _pgbench(
                            login.url(url),
                            login.password,
                            script,
                            variables,
                            count,
                            max(1, seconds // rounds),
                            prefix,
                        )
                        logs = sorted(work.glob(f"{prefix.name}.*"))
                        pooled[identity] += read_latencies(logs)
                        for log in logs:
                            log.unlink()
                for identity in IDENTITIES:
                    latencies = sorted(pooled[identity])
                    result = Result(
                        name,
                        identity,
                        count,
                        len(latencies),
                        len(latencies) / (max(1, seconds // rounds) * rounds),
                        percentile(latencies, 0.50),
                        percentile(latencies, 0.95),
                        percentile(latencies, 0.99),
                    )
                    results.append(result)
                    if progress:
                        progress(result)
    return results


def explain(url: str, function: str) -> str:
    """The plans PostgreSQL runs inside one API call as the restricted Professional login, with
    actual times: auto_explain of nested statements (the connecting user must be a superuser)."""
    if function not in SCRIPTS:
        raise ApiBenchError(f"unknown function {function!r}; known: {', '.join(SCRIPTS)}")
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    if not row or not row[0]:
        raise ApiBenchError("--explain needs a superuser connection (it loads auto_explain)")
    tag = uuid.uuid4().hex[:8]
    notices: list[str] = []
    with (
        _logins(url, tag, {"api": access.API_ROLE}) as logins,
        _bench_identity(url, tag, "api") as (data, user),
        psycopg.connect(url, autocommit=True) as conn,
    ):
        for statement in _AUTO_EXPLAIN:
            conn.execute(statement)
        conn.execute(
            sql.SQL("SET SESSION AUTHORIZATION {}").format(sql.Identifier(logins["api"].name))
        )
        variables = data.variables()
        values = {
            **variables,
            "sensor": int(variables["sensor_hi"]),
            "t": int(variables["t0"]),
            "t_end": int(variables["t0"]) + 86400,
            "m": 0,
            "m_end": 1,
        }
        call = re.sub(r"(?<!:):([a-z_0-9]+)", r"%(\1)s", _call(function))
        conn.add_notice_handler(lambda diagnostic: notices.append(diagnostic.message_primary or ""))
        with access.acting_as(conn, user):
            conn.execute(call, values)
        conn.execute("RESET SESSION AUTHORIZATION")
    return "\n\n".join(notices)


_AUTO_EXPLAIN = (
    "LOAD 'auto_explain'",
    "SET auto_explain.log_min_duration = 0",
    "SET auto_explain.log_analyze = on",
    "SET auto_explain.log_buffers = on",
    "SET auto_explain.log_nested_statements = on",
    "SET auto_explain.log_level = notice",
    "SET client_min_messages = notice",
)


def report(results: Sequence[Result]) -> str:
    """One line per function and client count: both identities' percentiles, RLS overhead."""
    by_key = {(r.function, r.identity, r.clients): r for r in results}
    lines = [
        f"{'function':<28} {'clients':>7} {'api tps':>8} {'api p50/p95/p99 ms':>22} "
        f"{'owner p50/p95/p99 ms':>22} {'RLS p50':>8} {'RLS p95':>8}  target",
    ]
    for function in dict.fromkeys(r.function for r in results):
        for clients in sorted({r.clients for r in results if r.function == function}):
            api, owner = (
                by_key.get((function, "api", clients)),
                by_key.get((function, "owner", clients)),
            )
            if not api or not owner:
                continue
            p50 = api.p50_ms / owner.p50_ms - 1
            p95 = api.p95_ms / owner.p95_ms - 1
            target = TARGETS_MS.get(function)
            verdict = []
            if target is not None:
                verdict.append(f"p95<{target:.0f}ms {'ok' if api.p95_ms < target else 'MISS'}")
            verdict.append(f"RLS<=20% {'ok' if p95 <= OVERHEAD_TARGET else 'MISS'}")
            lines.append(
                f"{function:<28} {clients:>7} {api.tps:>8.0f} "
                f"{api.p50_ms:>6.2f}/{api.p95_ms:>6.2f}/{api.p99_ms:>7.2f} "
                f"{owner.p50_ms:>6.2f}/{owner.p95_ms:>6.2f}/{owner.p99_ms:>7.2f} "
                f"{p50:>+8.0%} {p95:>+8.0%}  {', '.join(verdict)}"
            )
    return "\n".join(lines)
