"""`bangkok-pipeline`: generate data, manage the database, and run the pipeline headless."""

import argparse
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Sequence
from contextlib import nullcontext, redirect_stdout
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from bangkok_pipeline.cli import access as cli_access
from bangkok_pipeline.cli import buildings as cli_buildings
from bangkok_pipeline.cli import operations as cli_operations
from bangkok_pipeline.cli.parsing import add_command, package_version
from bangkok_pipeline.core import settings
from bangkok_pipeline.core.months import Month, MonthSpecError, parse_months
from bangkok_pipeline.db import migrations
from bangkok_pipeline.db.connection import (
    DatabaseUnavailable,
    TransactionPooler,
    client_environment,
    connect,
    describe,
    embedded_server,
    resolve_url,
)
from bangkok_pipeline.db.embedded import POSTGRES_BIN_PATH, EmbeddedServerError
from bangkok_pipeline.defs.ingestion.partitions import add_building_partitions
from bangkok_pipeline.devtools import api_bench, sample
from bangkok_pipeline.devtools.generator import GeneratorError, generate
from bangkok_pipeline.runtime import partition_bench, services
from bangkok_pipeline.runtime.instance import (
    DagsterStorage,
    dagster_storage,
    ensure_dagster_database,
    open_instance,
)
from bangkok_pipeline.source.layout import BUILDING, FLOORS, MAX_FLOORS
from bangkok_pipeline.source.state import DirectoryState, scan_directory
from bangkok_pipeline.warehouse import access, buildings
from bangkok_pipeline.warehouse.ingest import IngestError, source_files

if TYPE_CHECKING:
    from bangkok_pipeline.runtime.headless import MonthOutcome

EXPECTED_ERRORS: tuple[type[Exception], ...] = (
    api_bench.ApiBenchError,
    DatabaseUnavailable,
    EmbeddedServerError,
    GeneratorError,
    IngestError,
    migrations.MigrationError,
    MonthSpecError,
    partition_bench.PartitionBenchError,
    services.ServiceError,
    TransactionPooler,
    *cli_access.EXPECTED_ERRORS,
    *cli_buildings.EXPECTED_ERRORS,
    *cli_operations.EXPECTED_ERRORS,
)


def _all_months() -> str:
    """Every month partition, `2018-07..<CUBEMS_LAST_MONTH>`."""
    return f"{settings.DATA_FIRST_MONTH}..{settings.last_month()}"


def _generate(args: argparse.Namespace) -> int:
    months = parse_months(args.months or _all_months())
    manifest = generate(
        Path(args.out),
        months,
        seed=args.seed,
        defects=args.defects,
        progress=not args.quiet,
        add=args.add,
    )
    total = sum(month["valid_readings"] for month in manifest["totals"].values())
    print(
        f"{len(manifest['files'])} files for {len(manifest['months'])} month(s) in {args.out} "
        f"({total:,} valid readings; manifest.json beside them)"
    )
    return 0


def _migrate(args: argparse.Namespace) -> int:
    url = resolve_url()
    with connect(url, autocommit=True) as conn:
        steps = migrations.migrate(conn, _revision(args.to))
        version = migrations.current_version(conn)
    print(f"applied {', '.join(steps)}" if steps else "already up to date", end="")
    print(f"; {describe(url)} is at {version:04d}")
    return 0


def _downgrade(args: argparse.Namespace) -> int:
    url = resolve_url()
    with connect(url, autocommit=True) as conn:
        steps = migrations.downgrade(conn, _revision(args.revision))
        version = migrations.current_version(conn)
    print(f"reverted {', '.join(steps)}; {describe(url)} is at {version:04d}")
    return 0


def _revision(text: str | None) -> int | None:
    if text is None:
        return None
    if text == "base":
        return 0
    if not text.isdigit():
        raise migrations.MigrationError(
            f"{text!r} is not a revision; expected a number like 0001, or 'base'"
        )
    return int(text)


def _source(option: str | None) -> Path:
    """The CSV directory: --source, else CUBEMS_SOURCE_DIR, else BANGKOK_HOME/source."""
    return Path(option).expanduser().resolve() if option else settings.source_dir()


def _months_with_data(source: Path) -> list[Month]:
    """The partitions for which the source files hold lines; months beyond them are reported."""
    digests = scan_directory(source, DirectoryState(), settings.max_source_bytes()).state
    found = sorted(digests.month_digests())
    first, last = settings.DATA_FIRST_MONTH, settings.last_month()
    beyond = [m for m in found if m > last]
    if beyond:
        print(
            f"note: {source} also has lines of {', '.join(beyond)}, after the last partition "
            f"{last}: set CUBEMS_LAST_MONTH={beyond[-1]} to load them"
        )
    months = [m for m in found if first <= m <= last]
    if not months:
        raise IngestError(f"the files in {source} hold no line of a month {first}..{last}")
    return [Month.parse(month) for month in months]


def _prepare() -> str:
    """Database up and migrated, Dagster's database made: what `load` and `up` both need first.
    Returns the pipeline database's URL."""
    url = resolve_url()
    with connect(url, autocommit=True) as conn:
        migrations.migrate(conn)
    ensure_dagster_database(url)
    return url


def _load(args: argparse.Namespace) -> int:
    """Migrate, make sure there is source data, and materialize the months through Dagster."""
    from bangkok_pipeline.core.failures import exception_links, summarize
    from bangkok_pipeline.runtime.headless import Interrupted, interruptible

    try:
        with interruptible():
            return _load_months(args)
    except Interrupted as stop:
        print(stop.explain(), flush=True)
        return stop.exit_code
    except Exception as error:
        if isinstance(error, (*EXPECTED_ERRORS, OSError)):
            raise
        if args.verbose:
            traceback.print_exc()
        print(f"error: {summarize(exception_links(error))}", file=sys.stderr)
        return 1


def _load_months(args: argparse.Namespace) -> int:
    """With --json, stdout carries the JSON document only (everything else goes to stderr)."""
    stdout = sys.stdout
    with redirect_stdout(sys.stderr) if args.json else nullcontext():
        outcomes = _materialize(args)
    failed = [o.month for o in outcomes if not o.success]
    if args.json:
        print(json.dumps(_outcomes_json(outcomes), indent=2), file=stdout)
        return 1 if failed else 0
    if len(outcomes) > 1:
        print(_outcomes_table(outcomes))
    details = "" if args.verbose else f" (details: --verbose, the run in the UI, or {_logs()})"
    print(
        f"{len(outcomes) - len(failed)} of {len(outcomes)} month(s) loaded"
        + (f"; failed: {', '.join(failed)}{details}" if failed else "")
    )
    if args.sample and not failed:
        print(sample.EXPECTED_FINDINGS)
    return 1 if failed else 0


def _materialize(args: argparse.Namespace) -> list["MonthOutcome"]:
    """The months `load` was asked for, through Dagster, reported as they finish."""
    from bangkok_pipeline.runtime.headless import MonthOutcome, materialize_months

    url = _prepare() if args.building else None  # the building is looked up in the database
    building, registered = _building(args, url)
    if args.sample:
        source = cli_operations.sample_source(args.source, args.months)
        months = [sample.SAMPLE_MONTH]
    else:
        source = registered or _source(args.source)
        # refuses, naming what it holds, a folder without CU-BEMS files
        source_files(source, building, MAX_FLOORS if registered else FLOORS)
        asked = parse_months(args.months) if args.months else None  # a bad range: said first
        found = _months_with_data(source)
        months = found if asked is None else asked
        without = [str(m) for m in months if m not in found]
        if without:  # refused before Dagster starts: one line, nothing loaded
            raise IngestError(
                f"no source lines for {', '.join(without)} in {source} (its files hold "
                f"{', '.join(str(m) for m in found)}): nothing was loaded"
            )
    url = url or _prepare()
    storage = dagster_storage(url)
    _sweep(storage)

    # Live progress (month and step) on a terminal only; the lines and the table are the record.
    bar = tqdm(
        total=len(months),
        unit="month",
        file=sys.stderr,
        leave=False,
        disable=not sys.stderr.isatty(),
    )

    def report(outcome: MonthOutcome) -> None:
        bar.update(1)
        if args.json:
            return
        mark = "ok  " if outcome.success else "FAIL"
        bar.write(f"{mark} {outcome.month}: {outcome.summary}", file=sys.stdout)
        for warning in outcome.warnings:
            bar.write(f"     warning: {warning}", file=sys.stdout)
        sys.stdout.flush()  # a line per month as it happens, also into a pipe
        if args.verbose and outcome.detail:
            print(outcome.detail.rstrip(), file=sys.stderr, flush=True)

    def progress(month: str, step: str) -> None:
        bar.set_description_str(f"{month} {step}")

    whose = "" if building == BUILDING else f" of {building}"
    print(f"loading {len(months)} month(s){whose} from {source} into {describe(url)}", flush=True)
    try:
        return materialize_months(
            [str(m) for m in months],
            url,
            source,
            storage,
            report,
            verbose=args.verbose,
            allow_shrink=args.allow_shrink,
            progress=progress,
            building=building,
        )
    finally:
        bar.close()


def _building(args: argparse.Namespace, url: str | None) -> tuple[str, Path | None]:
    """The building `load` was asked for (by name or id, in the database at `url`; CU-BEMS by
    default) and its registered folder (None for CU-BEMS, whose folder is --source or the
    configured one)."""
    if not args.building or url is None:
        return BUILDING, None
    with connect(url) as conn:
        found = buildings.find(conn, access.find_building(conn, args.building).building_id)
    if not found.source:
        return found.name, None
    folder = Path(found.source)
    if args.sample:
        raise buildings.BuildingError(
            f"--sample is CU-BEMS's sample week; {found.name} loads from its folder {folder}"
        )
    if args.source and Path(args.source).expanduser().resolve() != folder:
        raise buildings.BuildingError(
            f"{found.name} loads from the folder it was registered with, {folder}, not "
            f"{args.source} (register another building for other files)"
        )
    return found.name, folder


def _outcomes_table(outcomes: Sequence["MonthOutcome"]) -> str:
    """The months side by side: result, readings, quarantined cells, database step, peak RSS."""
    rows = [("month", "result", "readings", "quarantined", "database s", "peak MB")]
    rows += [
        (
            o.month,
            "ok" if o.success else "FAILED",
            f"{o.readings:,}",
            f"{o.quarantined:,}",
            f"{o.database_s:.1f}",
            f"{o.peak_rss_mb:.0f}",
        )
        for o in outcomes
    ]
    rows.append(
        (
            "total",
            f"{sum(o.success for o in outcomes)}/{len(outcomes)} ok",
            f"{sum(o.readings for o in outcomes):,}",
            f"{sum(o.quarantined for o in outcomes):,}",
            f"{sum(o.database_s for o in outcomes):.1f}",
            f"{max(o.peak_rss_mb for o in outcomes):.0f}",
        )
    )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


def _outcomes_json(outcomes: Sequence["MonthOutcome"]) -> dict[str, object]:
    """What `load --json` prints: per month its outcome (not the trace), then the failed months."""
    return {
        "months": [{k: v for k, v in asdict(o).items() if k != "detail"} for o in outcomes],
        "failed": [o.month for o in outcomes if not o.success],
    }


def _logs() -> str:
    from bangkok_pipeline.runtime.headless import log_path

    return str(log_path("<month>"))


def _sweep(storage: DagsterStorage) -> None:
    """Finish the runs that a killed or crashed load left behind, so that none blocks this one."""
    from bangkok_pipeline.runtime.headless import sweep_abandoned_runs

    with open_instance(storage) as instance:
        for swept in sweep_abandoned_runs(instance):
            print(swept.line, flush=True)


def _up(args: argparse.Namespace) -> int:
    """Everything `load` prepares, then the Dagster UI (and daemon) in the foreground."""
    services.ensure_port_free(args.host, args.port)
    source = cli_operations.sample_source(args.source) if args.sample else _source(args.source)
    try:
        source_files(source)
    except IngestError as error:
        print(f"warning: {error}; the source sensor finds nothing to load until there is")
    url = _prepare()
    storage = dagster_storage(url)
    _sweep(storage)
    with connect(url) as conn, open_instance(storage) as instance:  # the UI's building rows
        add_building_partitions(instance, [b.name for b in buildings.list_buildings(conn)])
    home = settings.bangkok_home()
    env = {
        **settings.ALLOCATOR_ENVIRONMENT,
        **os.environ,
        "BANGKOK_HOME": str(home),
        "DATABASE_URL": url,
        "CUBEMS_SOURCE_DIR": str(source),
        **storage.environment(),
    }
    logs = home / "logs"
    children = [services.webserver(args.host, args.port, logs)]
    if not args.no_daemon:
        children.append(services.daemon(logs))
    ui = services.ui_url(args.host, args.port)
    exposure = services.exposure_warning(args.host, args.port)
    if exposure:
        print(exposure, file=sys.stderr, flush=True)
    print(f"starting {' and '.join(c.name for c in children)} (logs in {logs})", flush=True)
    with services.interrupt_on_sigterm():
        try:
            with services.running(children, env):
                services.wait_until_answering(ui, children[0], others=children[1:])
                print(
                    f"Dagster UI: {services.public_urls(args.host, args.port)}  (Ctrl-C stops it)",
                    flush=True,
                )
                services.watch(children)
        except KeyboardInterrupt:
            pass
    print(
        f"stopped {' and '.join(c.name for c in children)}; the database keeps running "
        "(`bangkok-pipeline db stop` stops it)",
        flush=True,
    )
    return 0


def _bench(args: argparse.Namespace) -> int:
    from bangkok_pipeline.devtools.bench import report, run_ingest_bench

    months = parse_months(args.months)
    source = (
        Path(args.source).expanduser().resolve()
        if args.source
        else (settings.bangkok_home() / "bench-source")
    )
    keys = [str(m) for m in months]
    manifest = source / "manifest.json"
    if not args.source and (
        not manifest.exists() or sorted(json.loads(manifest.read_text())["months"]) != keys
    ):
        print(f"generating {', '.join(keys)} into {source}", flush=True)
        generate(source, months, progress=not args.quiet)
    url = settings.database_url() or embedded_server().ensure_running()
    print(f"measuring {len(keys)} month(s) on {describe(url)}", flush=True)
    print(report(run_ingest_bench(url, keys, source, rows_pipeline=not args.compressed_only)))
    return 0


def _bench_api(args: argparse.Namespace) -> int:
    url = settings.database_url() or embedded_server().ensure_running()
    clients = [int(c) for c in args.clients.split(",") if c.strip()]
    functions = [f.strip() for f in args.functions.split(",")] if args.functions else None
    print(f"measuring the query API on {describe(url)}, clients {clients}", flush=True)

    def progress(result: api_bench.Result) -> None:
        print(
            f"  {result.function} as {result.identity}, {result.clients} client(s): "
            f"p95 {result.p95_ms:.2f} ms",
            flush=True,
        )

    results = api_bench.run_api_bench(
        url,
        clients,
        args.seconds,
        args.warmup,
        functions or tuple(api_bench.SCRIPTS),
        progress,
        args.rounds,
    )
    print(api_bench.report(results))
    if args.explain:
        print(api_bench.explain(url, args.explain))
    return 0


def _bench_partitions(args: argparse.Namespace) -> int:
    results = partition_bench.run_partition_bench(
        args.buildings,
        args.months,
        args.repeats,
        progress=lambda line: print(line, flush=True),
    )
    print(partition_bench.report(results))
    return 0


def _url(args: argparse.Namespace) -> int:
    print(resolve_url())
    return 0


def _stop(args: argparse.Namespace) -> int:
    if settings.database_url():
        print("DATABASE_URL is set: the external server is not ours to stop")
        return 0
    stopped = embedded_server().stop()
    print("embedded server stopped" if stopped else "embedded server was not running")
    return 0


def _psql(args: argparse.Namespace) -> int:
    """psql on the database in use, in Bangkok time unless PGTZ says otherwise; its exit code."""
    conninfo, env = client_environment(resolve_url())
    env.setdefault("PGTZ", settings.BANGKOK_TZ.key)
    env.setdefault("PGAPPNAME", "bangkok-pipeline psql")
    command = [str(POSTGRES_BIN_PATH / "psql"), "--dbname", conninfo, *args.arguments]
    return subprocess.run(command, env=env, check=False).returncode


def _env(args: argparse.Namespace) -> int:
    url = resolve_url()
    ensure_dagster_database(url)
    for name, value in {"DATABASE_URL": url, **dagster_storage(url).environment()}.items():
        print(f"export {name}='{value}'")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bangkok-pipeline", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    generate = add_command(
        commands,
        "generate",
        "write stand-in CU-BEMS CSV files (the real dataset's names, layout, scale and defects)",
        "bangkok-pipeline generate --out ~/cubems-standin --months 2019-01..2019-03 --defects",
    )
    generate.add_argument("--out", required=True, help="directory for {year}Floor{n}.csv")
    generate.add_argument(
        "--months", help="e.g. 2018-07..2019-12 or 2018-07 (default: every partition)"
    )
    generate.add_argument("--seed", type=int, default=42)
    generate.add_argument(
        "--defects", action="store_true", help="inject every real-world defect kind at small rates"
    )
    generate.add_argument(
        "--add",
        action="store_true",
        help="keep the months already in --out (same --seed and --defects); files that come out "
        "the same are left untouched",
    )
    generate.add_argument("--quiet", action="store_true", help="no progress bar")
    generate.set_defaults(handler=_generate)

    load = add_command(
        commands,
        "load",
        "load months of the source files through Dagster, headless (migrates the database first)",
        "bangkok-pipeline load --sample",
        "bangkok-pipeline load --source ~/CU-BEMS --months 2018-07..2018-09",
        "bangkok-pipeline load --building 'Tower B' --months 2019-01..2019-02",
    )
    load.add_argument(
        "--months", help="e.g. 2018-07..2018-09 (default: every month the source files hold)"
    )
    load.add_argument("--source", help="directory of the CSV files (default: CUBEMS_SOURCE_DIR)")
    load.add_argument(
        "--building",
        help="name or id of a building registered with `buildings add`: loads its months from "
        "its folder (default: CU-BEMS)",
    )
    load.add_argument("--quiet", action="store_true", help="no progress bar while generating")
    load.add_argument(
        "--sample",
        action="store_true",
        help="load the stand-in sample week (all floors), generated under BANGKOK_HOME",
    )
    load.add_argument(
        "--allow-shrink",
        action="store_true",
        help="let a reload remove a floor or more than BANGKOK_MAX_SHRINK_SHARE of one",
    )
    load.add_argument(
        "--verbose", action="store_true", help="Dagster's output and traces on the terminal"
    )
    load.add_argument(
        "--json", action="store_true", help="print one JSON document of the outcomes, for scripts"
    )
    load.set_defaults(handler=_load)

    up = add_command(
        commands,
        "up",
        "start the database, migrate, then run the Dagster UI and daemon until Ctrl-C",
        "bangkok-pipeline up --sample",
        "bangkok-pipeline up --source ~/CU-BEMS --port 3001",
    )
    up.add_argument("--port", type=int, default=3000, help="UI port (default: 3000)")
    up.add_argument(
        "--host",
        default="127.0.0.1",
        help="UI address (default: 127.0.0.1; the UI has no authentication, see README)",
    )
    up.add_argument("--source", help="directory the sensor watches (default: CUBEMS_SOURCE_DIR)")
    up.add_argument(
        "--no-daemon",
        action="store_true",
        help="UI only: sensors and schedules do not tick, launched runs wait in the queue",
    )
    up.add_argument(
        "--sample", action="store_true", help="watch the sample week (all floors) for demos"
    )
    up.set_defaults(handler=_up)

    add_command(
        commands,
        "psql",
        "psql (the embedded server's) connected to the database in use; arguments pass through",
        "bangkok-pipeline psql",
        "bangkok-pipeline psql -c 'SELECT count(*) FROM sensor_readings'",
        "bangkok-pipeline psql -f my-query.sql --csv",
        add_help=False,  # -h and --help are psql's
    ).set_defaults(handler=_psql, passthrough=True)

    bench = add_command(commands, "bench", "benchmarks (not tests)")
    bench_commands = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCH")
    ingest = add_command(
        bench_commands,
        "ingest",
        "the compressed load and the pipeline of rows vs plain COPY of the same readings",
        "bangkok-pipeline bench ingest --months 2018-07..2019-12 --compressed-only",
    )
    ingest.add_argument("--months", default="2018-07", help="e.g. 2018-07..2019-12")
    ingest.add_argument("--source", help="CSV directory (default: generated under BANGKOK_HOME)")
    ingest.add_argument("--quiet", action="store_true")
    ingest.add_argument(
        "--compressed-only",
        action="store_true",
        help="skip the pipeline of rows through Dagster (the slowest part)",
    )
    ingest.set_defaults(handler=_bench)
    api = add_command(
        bench_commands,
        "api",
        "query API latency (pgbench) as a restricted login vs the table owner",
        "bangkok-pipeline bench api --clients 1,16",
    )
    api.add_argument("--clients", default="1,8,16", help="concurrent clients, e.g. 1,8,16")
    api.add_argument("--seconds", type=int, default=10, help="per function, identity and count")
    api.add_argument("--warmup", type=int, default=3, help="unmeasured seconds first")
    api.add_argument(
        "--rounds", type=int, default=3, help="alternating api/owner slices per measurement"
    )
    api.add_argument("--functions", help="comma-separated subset (default: all)")
    api.add_argument("--explain", metavar="FUNCTION", help="also print its plans (superuser)")
    api.set_defaults(handler=_bench_api)
    partitions = add_command(
        bench_commands,
        "partitions",
        "Dagster UI partition queries and backfill creation, building × month, static vs dynamic",
        "bangkok-pipeline bench partitions --buildings 200 --months 18 --repeats 20",
    )
    partitions.add_argument(
        "--buildings",
        type=int,
        metavar="N",
        default=partition_bench.DEFAULT_BUILDINGS,
        help=f"buildings per asset (default: {partition_bench.DEFAULT_BUILDINGS})",
    )
    partitions.add_argument(
        "--months",
        type=int,
        metavar="N",
        default=partition_bench.DEFAULT_MONTHS,
        help=f"months from {partition_bench.FIRST_MONTH} (default: "
        f"{partition_bench.DEFAULT_MONTHS})",
    )
    partitions.add_argument(
        "--repeats",
        type=int,
        metavar="N",
        default=partition_bench.DEFAULT_REPEATS,
        help=f"rounds of timed requests (default: {partition_bench.DEFAULT_REPEATS})",
    )
    partitions.set_defaults(handler=_bench_partitions)

    db = add_command(commands, "db", "the database: migrations, URL, server, backups, tiers")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    migrate = add_command(
        db_commands,
        "migrate",
        "apply pending migrations",
        "bangkok-pipeline db migrate",
        "bangkok-pipeline db migrate --to 8",
    )
    migrate.add_argument("--to", help="stop at this revision (default: head)")
    migrate.set_defaults(handler=_migrate)
    downgrade = add_command(
        db_commands,
        "downgrade",
        "revert migrations",
        "bangkok-pipeline db downgrade",
        "bangkok-pipeline db downgrade base",
    )
    downgrade.add_argument(
        "revision", nargs="?", help="target revision, or 'base' (default: one step back)"
    )
    downgrade.set_defaults(handler=_downgrade)
    add_command(
        db_commands,
        "url",
        "print the database URL (starts the embedded server)",
        'psql "$(bangkok-pipeline db url)"',
    ).set_defaults(handler=_url)
    add_command(db_commands, "stop", "stop the embedded server").set_defaults(handler=_stop)
    cli_operations.add_db_commands(db_commands)

    add_command(
        commands,
        "env",
        "print shell exports for running `dagster` yourself",
        'eval "$(bangkok-pipeline env)" && dagster dev -w workspace.yaml',
    ).set_defaults(handler=_env)
    cli_operations.add_commands(commands)
    cli_access.add_commands(commands)
    cli_buildings.add_commands(commands)
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "passthrough", False):
        args.arguments = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        settings.check_all()  # a bad value is one line here, not a trace from a child later
        return handler(args)
    except EXPECTED_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(
            f"error: {error.strerror or error}: {error.filename or ''}".rstrip(": "),
            file=sys.stderr,
        )
        return 1


def main() -> None:
    try:
        os.umask(settings.umask())  # inherited by the server, Dagster and every run
    except settings.SettingError as error:
        sys.exit(f"error: {error}")
    sys.exit(run())
