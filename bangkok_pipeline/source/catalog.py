"""The sensor catalog: channels parsed from a header become rows of `sensors`, each once."""

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from bangkok_pipeline.db.queries import query
from bangkok_pipeline.source.layout import BUILDING, Channel


@dataclass(frozen=True)
class FloorSensors:
    """Sensor id and kind of every registered column of one floor."""

    ids: dict[str, int]
    kinds: dict[int, str]


def register_floor(
    conn: psycopg.Connection, floor: int, channels: Sequence[Channel], building: str = BUILDING
) -> FloorSensors:
    """Make sure every channel of a floor's header has a sensor row in `building` (which must
    exist); return the floor's sensors. New sensors take the next ids of the building's block."""
    zones = sorted({c.zone for c in channels})
    params = {"building": building, "floor": floor}
    with conn.transaction():
        conn.execute(query("insert_zones"), {**params, "zones": zones})
        conn.execute(
            query("insert_sensors"),
            {
                **params,
                "zones": [c.zone for c in channels],
                "channels": [c.channel for c in channels],
                "kinds": [c.kind for c in channels],
                "units": [c.unit for c in channels],
                "columns": [c.column for c in channels],
            },
        )
    rows = conn.execute(query("select_floor_sensors"), params).fetchall()
    return FloorSensors(
        ids={column: sensor_id for column, sensor_id, _ in rows},
        kinds={sensor_id: kind for _, sensor_id, kind in rows},
    )
