"""The operations commands of `bangkok-pipeline`: health, archive, db backup/restore/premake,
db compress/decompress.

Kept apart from cli/main.py so the main command file stays small; main.py registers these parsers
and handles the errors listed in EXPECTED_ERRORS. The work itself is in ops/ and warehouse/
(health, maintenance, archive, backup, compression); the handlers only parse, call and print.
"""

import argparse
import json
from pathlib import Path

import psycopg

from bangkok_pipeline.cli.parsing import add_command
from bangkok_pipeline.core import settings
from bangkok_pipeline.core.months import Month, parse_months
from bangkok_pipeline.db import migrations
from bangkok_pipeline.db.connection import connect, describe, resolve_url
from bangkok_pipeline.devtools import sample
from bangkok_pipeline.ops import backup, health
from bangkok_pipeline.source.layout import BUILDING
from bangkok_pipeline.warehouse import access, archive, compression, maintenance

EXPECTED_ERRORS: tuple[type[Exception], ...] = (
    archive.ArchiveError,
    backup.BackupError,
    compression.CompressionError,
    sample.SampleError,
    settings.SettingError,
)
CRITICAL_EXIT = 2
_BUILDING_HELP = f"the building's id or name (default: {BUILDING}, CU-BEMS)"


def migrated(url: str) -> psycopg.Connection:
    """An autocommit connection to a database at head; refuse one that is behind."""
    conn = connect(url, autocommit=True)
    current, head = migrations.current_version(conn), migrations.head()
    if current < head:
        conn.close()
        raise migrations.MigrationError(
            f"{describe(url)} is at {current:04d}, head is {head:04d}: run "
            "`bangkok-pipeline db migrate` first"
        )
    return conn


def sample_source(*conflicting: str | None) -> Path:
    """`--sample`: the sample week's directory under BANGKOK_HOME, generated when missing."""
    if any(conflicting):
        raise sample.SampleError("--sample picks its own source and month; drop --source/--months")
    directory = settings.bangkok_home() / "sample"
    if not sample.has_sample(directory):
        print(
            f"generating the sample week ({sample.SAMPLE_DAYS} days of "
            f"{sample.SAMPLE_MONTH}, all floors, with defects) into {directory}",
            flush=True,
        )
        sample.write_sample(directory)
    return directory


def _health(args: argparse.Namespace) -> int:
    url, not_running = health.target_url()
    source = Path(args.source).expanduser().resolve() if args.source else settings.source_dir()
    report = health.check_health(
        url,
        source,
        health.Limits.from_settings(),
        not_running=not_running,
        layers_url=settings.layers_url(),
    )
    print(report.as_json() if args.json else report.text())
    return CRITICAL_EXIT if report.critical else 0


def _premake(args: argparse.Namespace) -> int:
    ahead = settings.premake_months() if args.ahead is None else args.ahead
    with migrated(resolve_url()) as conn:
        report = maintenance.premake(conn, ahead)
    print(report.summary())
    return 0


def _backup(args: argparse.Namespace) -> int:
    keep = settings.backup_keep() if args.keep is None else max(1, args.keep)
    out = Path(args.out) if args.out else None
    result = backup.backup(resolve_url(), out, settings.backup_dir(), keep)
    print(result.summary())
    return 0


def _restore(args: argparse.Namespace) -> int:
    result = backup.restore(resolve_url(), Path(args.file), force=args.force)
    print(result.summary())
    return 0


def _compress(args: argparse.Namespace) -> int:
    keep_as_rows = settings.compress_after_months()
    if args.months is None and keep_as_rows is None:
        print(
            "no compression policy (BANGKOK_COMPRESS_AFTER_MONTHS=off) and no --months: "
            "nothing compressed"
        )
        return 0
    wanted = parse_months(args.months) if args.months else None
    with migrated(resolve_url()) as conn:
        building = access.find_building(conn, args.building).building_id
        months = compression.cold_months(conn, keep_as_rows, building) if wanted is None else wanted
        if not months:
            print(
                f"no month is older than the newest {keep_as_rows} with readings "
                "(BANGKOK_COMPRESS_AFTER_MONTHS): nothing compressed"
            )
            return 0
        # the whole range, before any change
        compression.check(conn, months, "compressed", building)
        for month in months:
            changed = compression.compress(conn, [month], building)
            print(changed[0].line() if changed else f"{month}: already compressed", flush=True)
    return 0


def _decompress(args: argparse.Namespace) -> int:
    months = parse_months(args.months)
    with migrated(resolve_url()) as conn:
        building = access.find_building(conn, args.building).building_id
        budget = settings.database_budget_bytes()
        changes = {
            change.month: change
            for change in compression.decompress(conn, months, budget, building)
        }
    for month in months:
        print(changes[month].line() if month in changes else f"{month}: already rows")
    return 0


def _archive_dir(args: argparse.Namespace) -> Path:
    return Path(args.dir).expanduser().resolve() if args.dir else settings.archive_dir()


def _archive_run(args: argparse.Namespace) -> int:
    raw, aggregates = settings.retain_raw_months(), settings.retain_aggregate_months()
    if raw is None and aggregates is None:
        print("no retention policy: set BANGKOK_RETAIN_RAW_MONTHS (and optionally ")
        print("BANGKOK_RETAIN_AGGREGATE_MONTHS); nothing archived")
        return 0
    with migrated(resolve_url()) as conn:
        building = access.find_building(conn, args.building).building_id
        if args.dry_run:
            plan = archive.plan_retention(conn, raw, aggregates, building)
            print(plan.summary() + " (dry run)")
            return 0
        plan = archive.apply_retention(
            conn,
            _archive_dir(args),
            raw,
            aggregates,
            report=lambda line: print(line, flush=True),
            building=building,
        )
    print(plan.summary())
    return 0


def _archive_month(args: argparse.Namespace) -> int:
    with migrated(resolve_url()) as conn:
        building = access.find_building(conn, args.building).building_id
        result = archive.archive_month(
            conn, Month.parse(args.month), _archive_dir(args), args.drop_aggregates, None, building
        )
    print(result.summary())
    return 0


def _archive_restore(args: argparse.Namespace) -> int:
    with migrated(resolve_url()) as conn:
        building = access.find_building(conn, args.building).building_id
        result = archive.restore_month(conn, Month.parse(args.month), _archive_dir(args), building)
    print(result.summary())
    return 0


def _archive_list(args: argparse.Namespace) -> int:
    with migrated(resolve_url()) as conn:
        ledger = archive.archived(conn)
    if args.json:
        print(json.dumps(ledger, indent=2, default=str))
        return 0
    if not ledger:
        print("no month archived")
    for entry in ledger:
        state = f"restored {entry['restored_at'][:19]}" if entry["restored_at"] else "archived"
        saving = (
            1 - entry["file_bytes"] / entry["partition_bytes"] if entry["partition_bytes"] else 0
        )
        print(
            f"{entry['month']}  {entry['building']:<16} {state:<28} "
            f"{entry['row_count']:>12,} readings  "
            f"{entry['file_bytes'] / 1024**2:8.1f} MB file vs "
            f"{entry['partition_bytes'] / 1024**2:8.1f} MB partition ({saving:.1%} smaller)"
            + ("  aggregates dropped" if entry["aggregates_dropped"] else "")
        )
    return 0


def add_db_commands(db_commands: argparse._SubParsersAction) -> None:
    """`db backup`, `db restore`, `db premake`, `db compress`, `db decompress`."""
    made = add_command(
        db_commands,
        "backup",
        "pg_dump (custom format) the database; keep the newest N backups",
        "bangkok-pipeline db backup",
        "bangkok-pipeline db backup --out /backups/bangkok.dump --keep 14",
    )
    made.add_argument(
        "--out", help="file to write (default: BANGKOK_BACKUP_DIR/bangkok-<UTC>.dump)"
    )
    made.add_argument("--keep", type=int, help="backups to keep (default: BANGKOK_BACKUP_KEEP, 7)")
    made.set_defaults(handler=_backup)
    restore = add_command(
        db_commands,
        "restore",
        "restore a backup into the (empty) database, in one transaction",
        "bangkok-pipeline db restore .bangkok/backups/bangkok-20261128T020000Z.dump",
    )
    restore.add_argument("file", help="a file written by `db backup`")
    restore.add_argument(
        "--force",
        action="store_true",
        help="restore into a database that has tables (the backup's objects are replaced)",
    )
    restore.set_defaults(handler=_restore)
    premake = add_command(
        db_commands,
        "premake",
        "create empty partitions for the months after the newest loaded one",
        "bangkok-pipeline db premake --ahead 3",
    )
    premake.add_argument(
        "--ahead", type=int, help="months after the newest loaded (default: BANGKOK_PREMAKE_MONTHS)"
    )
    premake.set_defaults(handler=_premake)
    compress = add_command(
        db_commands,
        "compress",
        "store months' readings compressed (one row per sensor and day, checked reading "
        "for reading); without --months, the months BANGKOK_COMPRESS_AFTER_MONTHS names "
        "(default 0: every month; off: nothing to do)",
        "bangkok-pipeline db compress",
        "bangkok-pipeline db compress --months 2018-07..2019-06",
    )
    compress.add_argument(
        "--months",
        help="e.g. 2018-07..2019-06; every month must be loaded (default: the months older than "
        "the newest BANGKOK_COMPRESS_AFTER_MONTHS with readings)",
    )
    compress.add_argument("--building", default=BUILDING, help=_BUILDING_HELP)
    compress.set_defaults(handler=_compress)
    decompress = add_command(
        db_commands,
        "decompress",
        "store compressed months as rows again; refused beforehand when they would not fit "
        "BANGKOK_DB_BUDGET or the server's disk",
        "bangkok-pipeline db decompress --months 2019-12",
    )
    decompress.add_argument(
        "--months", required=True, help="e.g. 2018-07..2018-09; every month must be loaded"
    )
    decompress.add_argument("--building", default=BUILDING, help=_BUILDING_HELP)
    decompress.set_defaults(handler=_decompress)


def add_commands(commands: argparse._SubParsersAction) -> None:
    """`health` and `archive ...`."""
    check = add_command(
        commands,
        "health",
        "database health, one line per concern; exit 2 when any is critical",
        "bangkok-pipeline health",
        "bangkok-pipeline health --json",
    )
    check.add_argument("--json", action="store_true", help="emit JSON instead of lines")
    check.add_argument("--source", help="CSV directory to compare (default: CUBEMS_SOURCE_DIR)")
    check.set_defaults(handler=_health)

    archiving = add_command(
        commands, "archive", "retention: old months' readings to Parquet, and back"
    )
    archive_commands = archiving.add_subparsers(
        dest="archive_command", required=True, metavar="ARCHIVE_COMMAND"
    )
    run = add_command(
        archive_commands,
        "run",
        "apply the retention policy (BANGKOK_RETAIN_RAW_MONTHS, ..._AGGREGATE_MONTHS)",
        "bangkok-pipeline archive run --dry-run",
    )
    run.add_argument("--dry-run", action="store_true", help="print what would be archived")
    month = add_command(
        archive_commands,
        "month",
        "archive one month's readings now (file verified before the drop)",
        "bangkok-pipeline archive month --month 2018-07",
    )
    month.add_argument("--month", required=True, help="e.g. 2018-07")
    month.add_argument(
        "--drop-aggregates", action="store_true", help="drop its aggregate partitions too"
    )
    restore = add_command(
        archive_commands,
        "restore",
        "put an archived month back, exactly",
        "bangkok-pipeline archive restore --month 2018-07",
        "bangkok-pipeline archive restore --month 2019-02 --building 'Tower B'",
    )
    restore.add_argument("--month", required=True, help="e.g. 2018-07")
    listing = add_command(
        archive_commands,
        "list",
        "archived months, file vs partition size",
        "bangkok-pipeline archive list --json",
    )
    listing.add_argument("--json", action="store_true")
    for parser in (run, month, restore):
        parser.add_argument("--building", default=BUILDING, help=_BUILDING_HELP)
    for parser, handler in (
        (run, _archive_run),
        (month, _archive_month),
        (restore, _archive_restore),
        (listing, _archive_list),
    ):
        parser.add_argument("--dir", help="archive directory (default: BANGKOK_ARCHIVE_DIR)")
        parser.set_defaults(handler=handler)
