"""Month partitions ahead of the data, and what schema `partitions` holds.

Why premake: there is no default partition, so a row for a month without a partition cannot be
written through the parents at all. A month's load creates its partitions itself, but anything
else that writes into the parents (a streaming writer, a backfill tool, a hand-run INSERT) needs
the month to exist before its first row arrives; the maintenance job keeps empty partitions ready
for the months after the newest loaded one and reports holes in the loaded range.

A premade partition is an ordinary attached month: a later load replaces it by the same atomic
swap as any loaded month (detach and drop it, attach the new table). The window is anchored on the
newest successfully loaded month, not on the clock, so a historical dataset does not grow empty
partitions for years it has no data for; before the first load there is nothing to anchor on.
"""

from dataclasses import dataclass, field

import psycopg

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.db.connection import table_exists
from bangkok_pipeline.db.queries import query
from bangkok_pipeline.source.layout import BUILDING_ID
from bangkok_pipeline.warehouse import partitions
from bangkok_pipeline.warehouse.month_lock import MonthBusy, month_lock
from bangkok_pipeline.warehouse.partitions import (
    ALL_TABLES,
    DAYS,
    READINGS,
    TABLES,
    PartitionedTable,
    parse_partition_name,
)


@dataclass(frozen=True)
class PartitionTable:
    name: str
    parent: str | None  # the partitioned table it is attached to, None when unattached
    bytes: int
    estimated_rows: int


@dataclass
class Inventory:
    """Schema `partitions` as it stands: attached months per parent, and everything else."""

    attached: dict[str, set[Month]] = field(default_factory=dict)  # parent -> months
    unattached: list[PartitionTable] = field(default_factory=list)
    tables: list[PartitionTable] = field(default_factory=list)
    leaves: dict[str, set[tuple[int, Month]]] = field(default_factory=dict)  # -> building-months

    def months(self, parent: str = READINGS.parent) -> set[Month]:
        return self.attached.get(parent, set())

    def building_months(self, parent: str, building: int) -> set[Month]:
        """The months in which `building` has an attached partition of `parent`."""
        return {m for b, m in self.leaves.get(parent, set()) if b == building}

    def with_readings(self) -> set[Month]:
        """Months whose readings are attached, as rows or compressed (migration 0009)."""
        return self.months(READINGS.parent) | self.months(DAYS.parent)

    def building_months_with_readings(self) -> set[tuple[int, Month]]:
        """(building, month) whose readings are attached, as rows or compressed."""
        return self.leaves.get(READINGS.parent, set()) | self.leaves.get(DAYS.parent, set())


def inventory(conn: psycopg.Connection) -> Inventory:
    result = Inventory({table.parent: set() for table in ALL_TABLES})
    for name, parent, size, rows in conn.execute(query("select_month_partitions")).fetchall():
        table = PartitionTable(name, parent, int(size), int(rows))
        result.tables.append(table)
        parsed = parse_partition_name(name)
        if parent is None:
            result.unattached.append(table)
        elif (
            parsed and parsed.building is None and parsed.token is None and parsed.parent == parent
        ):
            result.attached[parent].add(parsed.month)
        elif parsed and parsed.building and not parsed.token and parent.startswith(parsed.parent):
            result.leaves.setdefault(parsed.parent, set()).add((parsed.building, parsed.month))
    return result


def loaded_months(conn: psycopg.Connection) -> list[Month]:
    """Months with at least one successful load, oldest first."""
    rows = conn.execute(
        "SELECT DISTINCT month FROM load_log WHERE status = 'succeeded' ORDER BY 1"
    ).fetchall()
    return [Month.of(month) for (month,) in rows]


def loaded_building_months(conn: psycopg.Connection) -> set[tuple[int, Month]]:
    """(building, month) of every building-month with at least one successful load."""
    rows = conn.execute(query("select_loaded_building_months")).fetchall()
    return {(int(building), Month.of(month)) for building, month in rows}


def archived_months(
    conn: psycopg.Connection, building: int | None = BUILDING_ID
) -> dict[Month, bool]:
    """Months whose raw readings of `building` (None: of any building) are archived (not
    restored) -> whether aggregates were dropped (for any building: by every one archived)."""
    if not table_exists(conn, "archived_months"):
        return {}
    rows = conn.execute(query("select_archived_month_flags"), {"building": building}).fetchall()
    return {Month.of(month): bool(dropped) for month, dropped in rows}


def gaps(conn: psycopg.Connection, found: Inventory | None = None) -> list[Month]:
    """Months between the first and the last loaded month that have no readings partition (rows
    or compressed) and were not archived: holes a reader would take for a month without data."""
    loaded = loaded_months(conn)
    if not loaded:
        return []
    found = found or inventory(conn)
    archived = archived_months(conn)
    month, holes = loaded[0], []
    while month <= loaded[-1]:
        if month not in found.with_readings() and month not in archived:
            holes.append(month)
        month = month.next()
    return holes


@dataclass
class PremakeReport:
    window: list[Month]  # the months that should have partitions
    created: list[str] = field(default_factory=list)  # partitions.<name> created now
    skipped: list[str] = field(default_factory=list)  # why a month was left alone
    gaps: list[Month] = field(default_factory=list)

    def summary(self) -> str:
        if not self.window:
            return "nothing loaded yet: no month to premake after"
        span = f"{self.window[0]}..{self.window[-1]}"
        made = f"created {', '.join(self.created)}" if self.created else "nothing to create"
        holes = (
            f"; gaps (loaded range, no partition): {', '.join(str(m) for m in self.gaps)}"
            if self.gaps
            else ""
        )
        skipped = f"; skipped: {'; '.join(self.skipped)}" if self.skipped else ""
        return f"premake window {span}: {made}{skipped}{holes}"


def premake_window(conn: psycopg.Connection, ahead: int) -> list[Month]:
    """The newest loaded month and the `ahead` months after it (empty before the first load)."""
    loaded = loaded_months(conn)
    if not loaded:
        return []
    months = [loaded[-1]]
    for _ in range(ahead):
        months.append(months[-1].next())
    return months


def premake(conn: psycopg.Connection, ahead: int) -> PremakeReport:
    """Create the missing partitions (readings and both aggregates) of the premake window.

    Idempotent: an existing partition, loaded or premade, is never touched. A month whose load,
    archive or restore holds the month lock is skipped (that work creates its own partitions).
    """
    report = PremakeReport(premake_window(conn, ahead))
    archived = archived_months(conn)
    found = inventory(conn)
    for month in report.window:
        missing = [t for t in TABLES if month not in found.months(t.parent)]
        if not missing or month in found.months(DAYS.parent):  # compressed: no rows, no hours
            continue
        if month in archived:
            report.skipped.append(f"{month} is archived (`archive restore` it)")
            continue
        try:
            with month_lock(conn, month, wait=False), conn.transaction():
                conn.execute("SET LOCAL lock_timeout = '5s'")
                for table in missing:
                    report.created.append(create_empty_partition(conn, table, month))
        except MonthBusy:
            report.skipped.append(f"{month} is being loaded, archived or restored")
    report.gaps = gaps(conn)
    return report


def create_empty_partition(conn: psycopg.Connection, table: PartitionedTable, month: Month) -> str:
    """Create and attach one empty month partition, partitioned by building and holding no
    building yet (call in a transaction holding the month lock): empty, so ATTACH scans nothing
    and takes only a SHARE UPDATE EXCLUSIVE lock on the parent: readers are not blocked. An
    existing partition of the month is left as it is."""
    partitions.ensure_month(conn, table, month)
    return f"{partitions.SCHEMA}.{table.name(month)}"
