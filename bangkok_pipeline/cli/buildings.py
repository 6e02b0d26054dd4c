"""The `buildings` commands of `bangkok-pipeline`: register a building with the folder of its
CU-BEMS-format files (its sensors come from their headers; its months become partitions of the
Dagster assets) and list the buildings.

The work is in warehouse/buildings.py; the handlers only parse, call and print. Like `access`,
they need a migrated database and a login that may administer it (a superuser or a member of
bangkok_owner).
"""

import argparse
from pathlib import Path

from bangkok_pipeline.cli.access import administering, table
from bangkok_pipeline.cli.parsing import add_command
from bangkok_pipeline.db.connection import resolve_url
from bangkok_pipeline.defs.ingestion.partitions import add_building_partitions
from bangkok_pipeline.runtime.instance import (
    dagster_storage,
    ensure_dagster_database,
    open_instance,
)
from bangkok_pipeline.source.files import SourceError
from bangkok_pipeline.warehouse import buildings

EXPECTED_ERRORS: tuple[type[Exception], ...] = (buildings.BuildingError, SourceError)
_SHOWN = 10  # unknown columns listed before "and N more"
_SUBSCRIBE = "bangkok-pipeline access subscribe --tenant NAME --tier professional"


def _ids(building: buildings.Building) -> str:
    if building.first_sensor_id is None:
        return "-"
    return f"{building.first_sensor_id}..{building.last_sensor_id}"


def _add(args: argparse.Namespace) -> int:
    url = resolve_url()
    with administering(url) as conn:
        done = buildings.register(conn, args.name, Path(args.source))
        names = [b.name for b in buildings.list_buildings(conn)]
    b = done.building
    ensure_dagster_database(url)
    with open_instance(dagster_storage(url)) as instance:  # its partitions, in Dagster's UI,
        add_building_partitions(instance, names)  # after those of the buildings before it
    print(
        f"building {b.building_id} {b.name}: {b.floors} floors, {b.zones} zones, {b.sensors} "
        f"sensors (ids {_ids(b)}), {done.new_sensors} new; source {b.source}"
    )
    for line in done.skipped:
        print(f"skipped {line}")
    if done.unknown_columns:
        more = len(done.unknown_columns) - _SHOWN
        shown = ", ".join(done.unknown_columns[:_SHOWN])
        shown += f" and {more} more" if more > 0 else ""
        print(f"not registered, no channel of the CU-BEMS layout: {shown}")
    print(f"load its months: bangkok-pipeline load --building {b.building_id}")
    print(f"tenants see it once subscribed: {_SUBSCRIBE} --building {b.building_id}")
    return 0


def _list(args: argparse.Namespace) -> int:
    with administering(resolve_url()) as conn:
        found = buildings.list_buildings(conn)
    rows = [
        (
            str(b.building_id),
            b.name,
            str(b.floors),
            str(b.zones),
            str(b.sensors),
            _ids(b),
            b.source or "(the configured source)",
        )
        for b in found
    ]
    headers = ("ID", "NAME", "FLOORS", "ZONES", "SENSORS", "SENSOR IDS", "SOURCE")
    print("\n".join(table(headers, rows, "")))
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    """`buildings add | list`."""
    group = add_command(
        commands,
        "buildings",
        "register buildings beside CU-BEMS (their sensors from their files' headers) and list them",
        "bangkok-pipeline buildings add 'Tower B' --source ~/tower-b",
        "bangkok-pipeline buildings list",
    )
    building_commands = group.add_subparsers(
        dest="buildings_command", required=True, metavar="BUILDINGS"
    )
    add = add_command(
        building_commands,
        "add",
        "register a building with the folder of its {year}Floor{n}.csv files and every sensor "
        "their headers name (again: only new columns are added)",
        "bangkok-pipeline buildings add 'Tower B' --source ~/tower-b",
    )
    add.add_argument("name", help="the building's name, unique")
    add.add_argument("--source", required=True, help="folder of its CU-BEMS-format CSV files")
    add.set_defaults(handler=_add)
    add_command(
        building_commands,
        "list",
        "every building with its floors, zones, sensors, sensor ids and source",
        "bangkok-pipeline buildings list",
    ).set_defaults(handler=_list)
