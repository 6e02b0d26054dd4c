"""Is the database healthy? One finding per concern, each ok, warn, critical or unknown.

Why one place: `bangkok-pipeline health` prints these findings and the Dagster health sensor turns
the same ones into asset-check results and alerts, so the command line and the UI never disagree.
Every query here only reads; an unreachable server is itself the (critical) finding, and the
concerns that need it are reported as unknown.
"""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bangkok_pipeline.core import settings
from bangkok_pipeline.core.months import Month
from bangkok_pipeline.core.object_store import ObjectStore, ObjectStoreError
from bangkok_pipeline.core.settings import format_size
from bangkok_pipeline.db import migrations
from bangkok_pipeline.db.connection import (
    DatabaseUnavailable,
    TransactionPooler,
    connect,
    describe,
    embedded_server,
)
from bangkok_pipeline.db.queries import query
from bangkok_pipeline.source.layout import BUILDING_ID
from bangkok_pipeline.source.state import DirectoryState, scan_directory
from bangkok_pipeline.warehouse import access, maintenance
from bangkok_pipeline.warehouse.month_lock import held_months
from bangkok_pipeline.warehouse.partitions import (
    DAILY,
    DAYS,
    HOURLY,
    parse_partition_name,
)

MIN_SERVER_VERSION = 150000
ENABLE_PG_STAT_STATEMENTS = (
    "enable it: add pg_stat_statements to shared_preload_libraries and restart, then run "
    "CREATE EXTENSION pg_stat_statements (as a superuser) in this database; on hosted "
    "PostgreSQL the provider preloads it or exposes shared_preload_libraries in its parameter "
    "settings (Supabase: Database > Extensions > pg_stat_statements; Amazon RDS: the DB "
    "parameter group), and CREATE EXTENSION is run by the admin user"
)


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    CRITICAL = "critical"
    UNKNOWN = "unknown"


CONCERNS = (
    "database",
    "migrations",
    "connections",
    "database_size",
    "slow_statements",
    "loads",
    "partitions",
    "staging",
    "access",
    "layers",
)


@dataclass(frozen=True)
class Finding:
    concern: str
    status: Status
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        return f"{self.status.value.upper():<8} {self.concern:<15} {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "concern": self.concern,
            "status": self.status.value,
            "message": self.message,
            "details": json.loads(json.dumps(self.details, default=str)),
        }


@dataclass(frozen=True)
class Limits:
    """Thresholds; the defaults come from the environment (see settings)."""

    budget_bytes: int
    slow_ms: float
    budget_warn_share: float = 0.8
    connections_warn_share: float = 0.8
    connections_critical_share: float = 0.95
    slow_limit: int = 5

    @classmethod
    def from_settings(cls) -> "Limits":
        return cls(settings.database_budget_bytes(), settings.slow_statement_ms())


@dataclass
class Report:
    findings: list[Finding]
    source_state: DirectoryState | None = None  # for a caller that scans repeatedly
    seconds: float = 0.0

    @property
    def critical(self) -> list[Finding]:
        return [f for f in self.findings if f.status is Status.CRITICAL]

    def text(self) -> str:
        return "\n".join(f.line() for f in self.findings)

    def as_json(self) -> str:
        return json.dumps(
            {
                "critical": bool(self.critical),
                "seconds": round(self.seconds, 3),
                "findings": [f.as_dict() for f in self.findings],
            },
            indent=2,
        )


def target_url() -> tuple[str | None, str | None]:
    """The database to examine and, when there is none to try, why: health never starts the
    embedded server, because a stopped server is exactly what it must report."""
    url = settings.database_url()
    if url:
        return url, None
    server = embedded_server()
    if server.is_running():
        return server.url(), None
    return None, (
        f"the embedded server ({server.pgdata}) is not running; `bangkok-pipeline db url` starts it"
    )


def check_health(
    url: str | None,
    source_dir: Path | None,
    limits: Limits,
    source_state: DirectoryState | None = None,
    not_running: str | None = None,
    layers_url: str | None = None,
) -> Report:
    """Every concern, in CONCERNS order. `source_state` is a previous scan to reuse (files whose
    size and mtime did not change are not read again); `layers_url` is the object storage the
    layers live in, if any (checked whether or not the database answers)."""
    started = time.perf_counter()
    try:
        if url is None:
            raise DatabaseUnavailable(not_running or "no database URL")
        conn = connect(url, attempts=1, autocommit=True)
    except (DatabaseUnavailable, TransactionPooler) as error:
        reason = "refused" if isinstance(error, TransactionPooler) else "unreachable"
        findings = [Finding("database", Status.CRITICAL, f"{reason}: {error}")]
        findings += [
            Finding(c, Status.UNKNOWN, "not checked: the database is unreachable")
            for c in CONCERNS[1:-1]
        ]
        findings.append(_layers(layers_url))
        return Report(findings, source_state, time.perf_counter() - started)
    with conn:
        digests, state, problems = _source_digests(source_dir, source_state)
        checks: list[Callable[[], Finding]] = [
            lambda: _database(conn, url),
            lambda: _migrations(conn),
            lambda: _connections(conn, limits),
            lambda: _database_size(conn, limits),
            lambda: _slow_statements(conn, limits),
            lambda: _loads(conn, digests, problems),
            lambda: _partitions(conn, digests),
            lambda: _staging(conn),
            lambda: _access(conn),
            lambda: _layers(layers_url),
        ]
        findings = []
        for concern, check in zip(CONCERNS, checks, strict=True):
            try:
                findings.append(check())
            except psycopg.Error as error:
                first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                findings.append(
                    Finding(
                        concern, Status.UNKNOWN, f"could not check: {type(error).__name__}: {first}"
                    )
                )
    return Report(findings, state, time.perf_counter() - started)


def _layers(url: str | None) -> Finding:
    """The object storage the steps hand layers over through answers (a listing of the months
    published there); without one, the layers are local files."""
    if not url:
        return Finding("layers", Status.OK, "local files under BANGKOK_HOME/layers")
    try:
        months = ObjectStore(url).children("published")
    except ObjectStoreError as error:
        return Finding("layers", Status.CRITICAL, f"object storage unreachable: {error}")
    return Finding(
        "layers",
        Status.OK,
        f"{url} answers; {len(months)} month(s) published there",
        {"published_months": months},
    )


def _source_digests(
    source_dir: Path | None, previous: DirectoryState | None
) -> tuple[dict[str, str] | None, DirectoryState | None, list[str]]:
    if source_dir is None:
        return None, previous, []
    if not source_dir.is_dir():
        return None, previous, [f"source directory {source_dir} does not exist"]
    try:
        scan = scan_directory(source_dir, previous or DirectoryState(), settings.max_source_bytes())
    except OSError as error:
        return None, previous, [f"source directory {source_dir}: {error.strerror or error}"]
    return scan.state.month_digests(), scan.state, scan.problems


def _database(conn: psycopg.Connection, url: str) -> Finding:
    row = conn.execute(
        "SELECT current_setting('server_version'), current_setting('server_version_num')::int"
    ).fetchone()
    assert row is not None
    version, number = str(row[0]), int(row[1])
    details = {"server_version": version, "where": describe(url)}
    if number < MIN_SERVER_VERSION:
        return Finding(
            "database",
            Status.CRITICAL,
            f"PostgreSQL {version} is too old: the pipeline needs 15 or newer",
            details,
        )
    return Finding(
        "database", Status.OK, f"reachable, PostgreSQL {version} ({describe(url)})", details
    )


def _migrations(conn: psycopg.Connection) -> Finding:
    on_disk = migrations.available()
    done = migrations.applied(conn)
    head = migrations.head(on_disk)
    known = {m.version: m for m in on_disk}
    pending = [m.label for m in on_disk if m.version not in done]
    pending += [r.label for r in migrations.due_repeatables(conn, done, migrations.repeatables())]
    unknown = [f"{v:04d}" for v in sorted(done) if v not in known]
    edited = [
        known[v].label
        for v, checksum in done.items()
        if v in known and known[v].checksum != checksum
    ]
    details = {"current": max(done, default=0), "head": head, "pending": pending}
    if unknown:
        return Finding(
            "migrations",
            Status.CRITICAL,
            f"the database has migration(s) {', '.join(unknown)} that this code does not know: "
            "it is newer than this installation",
            details,
        )
    if edited:
        return Finding(
            "migrations",
            Status.CRITICAL,
            f"{', '.join(edited)} changed on disk after it was applied",
            details,
        )
    if pending:
        return Finding(
            "migrations",
            Status.CRITICAL,
            f"at {max(done, default=0):04d}, head is {head:04d}: {', '.join(pending)} pending "
            "(`bangkok-pipeline db migrate`)",
            details,
        )
    return Finding("migrations", Status.OK, f"at head ({head:04d})", details)


def classify_share(share: float, warn: float, critical: float) -> Status:
    if share >= critical:
        return Status.CRITICAL
    return Status.WARN if share >= warn else Status.OK


def _connections(conn: psycopg.Connection, limits: Limits) -> Finding:
    row = conn.execute(query("select_connection_use")).fetchone()
    assert row is not None
    used, maximum = int(row[0]), int(row[1])
    share = used / maximum
    status = classify_share(share, limits.connections_warn_share, limits.connections_critical_share)
    return Finding(
        "connections",
        status,
        f"{used} of max_connections {maximum} in use ({share:.0%}; warn at "
        f"{limits.connections_warn_share:.0%})",
        {"used": used, "max_connections": maximum, "share": round(share, 4)},
    )


def _database_size(conn: psycopg.Connection, limits: Limits) -> Finding:
    row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    size = int(row[0])
    share = size / limits.budget_bytes
    status = classify_share(share, limits.budget_warn_share, 1.0)
    verdict = {Status.OK: "", Status.WARN: ": nearly full", Status.CRITICAL: ": over budget"}
    return Finding(
        "database_size",
        status,
        f"{format_size(size)} of the {format_size(limits.budget_bytes)} budget ({share:.0%}; "
        f"BANGKOK_DB_BUDGET){verdict.get(status, '')}",
        {"bytes": size, "budget_bytes": limits.budget_bytes, "share": round(share, 4)},
    )


def _slow_statements(conn: psycopg.Connection, limits: Limits) -> Finding:
    row = conn.execute(query("select_pg_stat_statements_schema")).fetchone()
    if row is None:
        return Finding(
            "slow_statements",
            Status.WARN,
            f"pg_stat_statements is not installed in this database; {ENABLE_PG_STAT_STATEMENTS}",
        )
    view = sql.Identifier(str(row[0]), "pg_stat_statements")
    try:
        rows = conn.execute(
            sql.SQL(query("select_slow_statements")).format(view=view),
            {"threshold_ms": limits.slow_ms, "limit": limits.slow_limit},
        ).fetchall()
    except psycopg.errors.ObjectNotInPrerequisiteState:
        return Finding(
            "slow_statements",
            Status.WARN,
            "pg_stat_statements is installed but not preloaded (shared_preload_libraries); "
            + ENABLE_PG_STAT_STATEMENTS,
        )
    slow = [
        {"calls": calls, "mean_ms": round(mean, 1), "max_ms": round(peak, 1), "query": text}
        for calls, mean, peak, text in rows
    ]
    if not slow:
        return Finding(
            "slow_statements",
            Status.OK,
            f"no statement over {limits.slow_ms:g} ms mean (BANGKOK_SLOW_STATEMENT_MS)",
        )
    worst = slow[0]
    return Finding(
        "slow_statements",
        Status.WARN,
        f"{len(slow)}{'+' if len(slow) == limits.slow_limit else ''} statement(s) over "
        f"{limits.slow_ms:g} ms mean; slowest {worst['mean_ms']:,} ms x {worst['calls']}: "
        f"{worst['query'][:80]}",
        {"statements": slow},
    )


def _loads(
    conn: psycopg.Connection, digests: dict[str, str] | None, problems: list[str]
) -> Finding:
    history = conn.execute(query("select_load_history"), {"building": BUILDING_ID}).fetchall()
    loaded: dict[str, str | None] = dict(
        conn.execute(query("select_loaded_month_digests"), {"building": BUILDING_ID}).fetchall()
    )
    per_month = {
        month: {
            "last_success": str(success) if success else None,
            "rows_loaded": rows,
            "latest_attempt": status,
        }
        for month, success, rows, status, _ in history
    }
    failed = [month for month, _, _, status, _ in history if status == "failed"]
    details: dict[str, Any] = {"months": per_month, "source_problems": problems}
    succeeded = [m for m, entry in per_month.items() if entry["last_success"]]
    latest = (
        f"{len(succeeded)} month(s) loaded, newest {succeeded[-1]} at "
        f"{per_month[succeeded[-1]]['last_success'][:19]}"
        if succeeded
        else "no month loaded yet"
    )
    notes = []
    if digests is None:
        notes.append("; ".join(problems) or "source files not checked")
        changed: list[str] = []
        never: list[str] = []
    else:
        changed = sorted(m for m, d in digests.items() if m in loaded and loaded[m] != d)
        never = sorted(m for m in digests if m not in loaded)
        notes += problems
    details.update(changed_since_load=changed, never_loaded=never, latest_attempt_failed=failed)
    if changed:
        notes.append(f"source changed since the last load: {', '.join(changed)}")
    if never:
        notes.append(f"source data never loaded: {', '.join(never)}")
    if failed:
        notes.append(f"latest attempt failed: {', '.join(failed)}")
    status = Status.WARN if changed or never or failed or problems else Status.OK
    return Finding("loads", status, "; ".join([latest, *notes]), details)


def _keys(months: list[Month]) -> list[str]:
    return [str(m) for m in months]


def _lost_building_months(conn: psycopg.Connection, found: maintenance.Inventory) -> list[str]:
    """Building-months that loaded successfully but have no readings partition and were not
    archived: `2019-05`, or `2019-05 of building 2` for buildings after the first."""
    lost = []
    attached = found.building_months_with_readings()
    archived: dict[int, dict[Month, bool]] = {}
    for building, month in sorted(maintenance.loaded_building_months(conn) - attached):
        if building not in archived:
            archived[building] = maintenance.archived_months(conn, building)
        if month not in archived[building]:
            lost.append(
                str(month) if building == BUILDING_ID else f"{month} of building {building}"
            )
    return lost


def _partitions(conn: psycopg.Connection, digests: dict[str, str] | None) -> Finding:
    found = maintenance.inventory(conn)
    archived = maintenance.archived_months(conn, None)
    loaded = set(maintenance.loaded_months(conn))
    readings = found.with_readings()
    lost = _lost_building_months(conn, found)
    source = {Month.parse(k) for k in digests or {}}
    awaiting = sorted(m for m in source - loaded if m not in readings and m not in archived)
    no_aggregates = sorted(
        m
        for m in readings | {m for m, dropped in archived.items() if not dropped}
        if m not in found.months(DAILY.parent)
        or (m not in found.months(HOURLY.parent) and m not in found.months(DAYS.parent))
    )  # a compressed month's hours are its day rows' hourly summaries
    holes = maintenance.gaps(conn, found)
    details = {
        "attached_months": _keys(sorted(readings)),
        "archived_months": _keys(sorted(archived)),
        "loaded_but_missing": lost,
        "source_but_missing": _keys(awaiting),
        "missing_aggregates": _keys(no_aggregates),
        "gaps": _keys(holes),
    }
    problems = []
    if lost:
        problems.append(f"loaded but partition gone (not archived): {', '.join(lost)}")
    if awaiting:
        problems.append(f"source data but no partition yet: {', '.join(_keys(awaiting))}")
    if no_aggregates:
        problems.append(f"aggregate partitions missing: {', '.join(_keys(no_aggregates))}")
    gap_only = [m for m in holes if str(m) not in lost]
    if gap_only:
        problems.append(f"gaps in the loaded range: {', '.join(_keys(gap_only))}")
    summary = f"{len(readings)} month(s) attached, {len(archived)} archived"
    leaves = found.building_months_with_readings()
    buildings = {b for b, _ in leaves}
    if len(buildings) > 1:
        summary += f" ({len(leaves)} building-months of {len(buildings)} buildings attached)"
    if not problems:
        return Finding("partitions", Status.OK, summary, details)
    status = Status.CRITICAL if lost else Status.WARN
    return Finding("partitions", status, f"{summary}; {'; '.join(problems)}", details)


def _staging(conn: psycopg.Connection) -> Finding:
    found = maintenance.inventory(conn)
    held = held_months(conn)
    orphans: list[dict[str, Any]] = []
    in_progress: list[dict[str, Any]] = []
    for table in found.unattached:
        parsed = parse_partition_name(table.name)
        busy = parsed is not None and parsed.month in held
        entry = {"table": f"partitions.{table.name}", "bytes": table.bytes}
        entry["estimated_rows"] = table.estimated_rows if table.estimated_rows >= 0 else None
        (in_progress if busy else orphans).append(entry)
    running = conn.execute(
        "SELECT load_id, month, started_at FROM load_log WHERE status = 'running' ORDER BY load_id"
    ).fetchall()
    stuck = [
        {"load_id": load_id, "month": str(Month.of(month)), "started_at": str(started)}
        for load_id, month, started in running
        if Month.of(month) not in held
    ]
    details = {"orphaned_tables": orphans, "tables_being_built": in_progress, "stuck_loads": stuck}
    problems = []
    if orphans:
        size = sum(int(o["bytes"]) for o in orphans)
        problems.append(
            f"{len(orphans)} orphaned unattached table(s) in schema partitions "
            f"({format_size(size)}): "
            f"{', '.join(str(o['table']) for o in orphans[:5])}; the next load of the month drops "
            "them, or DROP TABLE them"
        )
    if stuck:
        problems.append(
            f"{len(stuck)} load(s) marked running with no process behind them: "
            f"{', '.join(str(s['month']) for s in stuck)} (the next load of the month closes them)"
        )
    if problems:
        return Finding("staging", Status.WARN, "; ".join(problems), details)
    building = f"; {len(in_progress)} table(s) being built by a running load" if in_progress else ""
    return Finding("staging", Status.OK, f"no orphaned tables or stuck loads{building}", details)


def _access(conn: psycopg.Connection) -> Finding:
    """The audit of the `api_roles_cannot_bypass_rls` asset check, for the whole database."""
    roles = access.audited_roles(conn)
    if access.API_ROLE not in roles:
        return Finding("access", Status.OK, "no API roles yet (migration 0004 not applied)")
    leaks = access.privilege_leaks(conn)
    gaps = access.rls_gaps(conn)
    audited = ", ".join(roles)
    details = {"privileges": [str(leak) for leak in leaks], "tables_without_forced_rls": gaps}
    if not leaks and not gaps:
        return Finding("access", Status.OK, f"no API role reaches around RLS ({audited})", details)
    problems = []
    if leaks:
        shown = "; ".join(str(leak) for leak in leaks[:5])
        problems.append(f"{len(leaks)} privilege(s) around RLS: {shown}")
    if gaps:
        problems.append(f"RLS not enabled and forced on: {', '.join(gaps)}")
    return Finding(
        "access", Status.CRITICAL, "; ".join(problems) + f" (audited: {audited})", details
    )
