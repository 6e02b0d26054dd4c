"""The CU-BEMS channel layout and the grammar of its file and column names.

One source of truth for both directions: the generator writes headers from `floor_columns`,
the loader reads any header back into `Channel`s with `parse_column`.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

ChannelKind = Literal["ac", "light", "plug", "temperature", "humidity", "illuminance"]

BUILDING = "Chamchuri 5"
BUILDING_ID = 1  # migration 0001 registers it first
FLOORS = range(1, 8)
MAX_FLOORS = range(1, 201)  # any building's, by floors.floor's CHECK (migration 0001)
DATE_COLUMN = "Date"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"

_COLUMN = re.compile(
    r"^z(?P<zone>[1-9]\d*)_(?:(?P<power>AC[1-9]\d*|Light|Plug)\(kW\)"
    r"|(?P<sensor>S[1-9]\d*)\((?P<unit>degC|RH%|lux)\))$"
)
_FILE = re.compile(r"^(?P<year>\d{4})Floor(?P<floor>[1-9]\d*)\.csv$")
_POWER_KINDS: dict[str, ChannelKind] = {"Light": "light", "Plug": "plug"}
_KIND_BY_UNIT: dict[str, ChannelKind] = {
    "degC": "temperature",
    "RH%": "humidity",
    "lux": "illuminance",
}


@dataclass(frozen=True)
class Channel:
    """One source column of one floor's file: the identity of a sensor."""

    floor: int
    zone: int
    channel: str  # AC3, Light, Plug, S1
    kind: ChannelKind
    unit: str
    column: str


@dataclass(frozen=True)
class SourceFile:
    year: int
    floor: int


def parse_file_name(name: str) -> SourceFile | None:
    """`2018Floor3.csv` -> SourceFile(2018, 3); None for any other name."""
    match = _FILE.match(name)
    if not match:
        return None
    return SourceFile(int(match.group("year")), int(match.group("floor")))


def file_name(year: int, floor: int) -> str:
    return f"{year}Floor{floor}.csv"


def parse_column(floor: int, column: str) -> Channel | None:
    """`z2_AC3(kW)` on floor 5 -> its Channel; None if the name does not follow the pattern."""
    match = _COLUMN.match(column)
    if not match:
        return None
    zone = int(match.group("zone"))
    if match.group("power"):
        name = match.group("power")
        kind = _POWER_KINDS.get(name, "ac")  # AC1, AC2, ... else Light or Plug
        return Channel(floor, zone, name, kind, "kW", column)
    unit = match.group("unit")
    return Channel(floor, zone, match.group("sensor"), _KIND_BY_UNIT[unit], unit, column)


def split_header(floor: int, header: Sequence[str]) -> tuple[list[Channel], list[str]]:
    """A floor file's header (Date first or not) as the Channels of its columns and, in header
    order, the columns that follow no channel pattern."""
    channels, unknown = [], []
    for column in header:
        if column == DATE_COLUMN:
            continue
        channel = parse_column(floor, column)
        if channel is None:
            unknown.append(column)
        else:
            channels.append(channel)
    return channels, unknown


def _zone(
    zone: int, acs: int, s1: bool, light_plug: tuple[str, ...] = ("Light", "Plug")
) -> list[str]:
    names = [f"z{zone}_AC{n}(kW)" for n in range(1, acs + 1)]
    names += [f"z{zone}_{name}(kW)" for name in light_plug]
    if s1:
        names += [f"z{zone}_S1({unit})" for unit in ("degC", "RH%", "lux")]
    return names


def _standard_floor(first_zone_acs: int) -> list[str]:
    return (
        _zone(1, first_zone_acs, True)
        + _zone(2, 1, True)
        + _zone(3, 0, False)
        + _zone(4, 4, True)
        + _zone(5, 1, True)
    )


_LAYOUT: dict[int, list[str]] = {
    1: _zone(1, 0, False)
    + _zone(2, 4, False)
    + _zone(3, 0, False)
    + _zone(4, 0, False, ("Light",)),
    2: _zone(1, 1, True) + _zone(2, 14, True) + _zone(3, 0, True) + _zone(4, 1, True),
    3: _standard_floor(4),
    4: _standard_floor(4),
    5: _standard_floor(4),
    6: _standard_floor(1),
    7: _standard_floor(4),
}


def floor_columns(floor: int) -> list[str]:
    """The channel columns of a floor's file, in the published order (Date not included)."""
    return list(_LAYOUT[floor])


def floor_channels(floor: int) -> list[Channel]:
    channels = [parse_column(floor, column) for column in _LAYOUT[floor]]
    return [c for c in channels if c is not None]
