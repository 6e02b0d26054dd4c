"""Buildings beside CU-BEMS: each registered by name with the folder of its CU-BEMS-format files,
its floors, zones and sensors taken from those files' names and headers.

Every building's sensors draw ids from a block of their own (migration 0010), so Row Level
Security, subscriptions and the API treat a second building exactly like the first. Registering
again with the same folder only adds the columns that are new since; a folder holding something
other than CU-BEMS-format files is refused in one line, and columns the layout does not know are
reported, not registered.
"""

from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.rows import class_row

from bangkok_pipeline.db.queries import query
from bangkok_pipeline.source.catalog import register_floor
from bangkok_pipeline.source.files import read_header
from bangkok_pipeline.source.layout import MAX_FLOORS, Channel, parse_file_name, split_header
from bangkok_pipeline.warehouse.ingest import source_files

# What Dagster refuses in a partition key of a building × month partitioning.
_NOT_IN_NAMES = ("|", ",", "[", "]", "...")


class BuildingError(ValueError):
    """A registration that cannot be made; nothing was changed."""


@dataclass(frozen=True)
class Building:
    """A building and its catalog; the ids are None while it has no sensor."""

    building_id: int
    name: str
    source: str | None
    floors: int
    zones: int
    sensors: int
    first_sensor_id: int | None
    last_sensor_id: int | None


@dataclass(frozen=True)
class Registration:
    building: Building
    new_sensors: int
    unknown_columns: list[str] = field(default_factory=list)  # "<file>: <column>"
    skipped: list[str] = field(default_factory=list)  # files that are not CU-BEMS files


def floor_channels_of(
    source: Path, building: str
) -> tuple[dict[int, list[Channel]], list[str], list[str]]:
    """The channels of every floor the folder's headers name (each column once, in header
    order), the columns no channel matches, and the files that are not CU-BEMS files. Any floor
    the schema takes (1-200) may appear: the layout is the headers'."""
    files, skipped = source_files(source, building, MAX_FLOORS)
    floors: dict[int, dict[str, Channel]] = {}
    unknown: list[str] = []
    for path in files:
        named = parse_file_name(path.name)
        assert named is not None  # source_files keeps CU-BEMS names only
        channels, unrecognised = split_header(named.floor, read_header(path))
        known = floors.setdefault(named.floor, {})
        for channel in channels:
            known.setdefault(channel.column, channel)
        unknown += [f"{path.name}: {column}" for column in unrecognised]
    return {f: list(c.values()) for f, c in sorted(floors.items())}, unknown, skipped


def register(conn: psycopg.Connection, name: str, source: Path) -> Registration:
    """Add building `name` with the files of `source` (or the building already of that name, if
    its source is this folder or none) and register every sensor their headers name."""
    name = name.strip()
    if not name:
        raise BuildingError("a building needs a name")
    forbidden = sorted(
        {part for part in _NOT_IN_NAMES if part in name} | {c for c in name if not c.isprintable()}
    )
    if forbidden:  # the name is the building's Dagster partition key
        raise BuildingError(
            f"building name {name!r} holds {', '.join(repr(c) for c in forbidden)}; a name may "
            f"not hold {' '.join(_NOT_IN_NAMES)} or control characters"
        )
    folder = Path(source).expanduser().resolve()
    if not folder.is_dir():
        raise BuildingError(
            f"source {folder} does not exist or is not a folder; expected a folder of "
            "{year}Floor{n}.csv files"
        )
    floors, unknown, skipped = floor_channels_of(folder, name)
    try:
        with conn.transaction():
            row = conn.execute(query("insert_building"), {"name": name, "source": str(folder)})
            building_id, registered = row.fetchone() or (None, None)
            if building_id is None or registered != str(folder):
                raise BuildingError(
                    f"building {name!r} is registered with the source {registered}, not "
                    f"{folder}; a building has one source folder"
                )
            before = find(conn, building_id).sensors
            for floor, channels in floors.items():
                register_floor(conn, floor, channels, name)
    except psycopg.errors.UniqueViolation:
        raise BuildingError(
            f"building {name!r} was being added by another session at the same time; run again"
        ) from None
    after = find(conn, building_id)
    return Registration(after, after.sensors - before, unknown, skipped)


def named(conn: psycopg.Connection, name: str) -> Building:
    """The building called `name`; refused in one line when none is."""
    registered = list_buildings(conn)
    for building in registered:
        if building.name == name:
            return building
    known = ", ".join(repr(b.name) for b in registered)
    raise BuildingError(
        f"no building is called {name!r} (registered: {known}); add it with "
        "`bangkok-pipeline buildings add NAME --source FOLDER`"
    )


def source_folder(building: Building, configured: Path) -> Path:
    """Where `building`'s files are: its registered folder, else (CU-BEMS) the `configured` one."""
    return Path(building.source) if building.source else configured


def find(conn: psycopg.Connection, building_id: int) -> Building:
    (building,) = _select(conn, building_id)
    return building


def list_buildings(conn: psycopg.Connection) -> list[Building]:
    return _select(conn, None)


def _select(conn: psycopg.Connection, building_id: int | None) -> list[Building]:
    with conn.cursor(row_factory=class_row(Building)) as cursor:
        return cursor.execute(query("select_buildings"), {"building_id": building_id}).fetchall()
