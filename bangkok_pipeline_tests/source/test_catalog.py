"""The sensor catalog: a header's channels become sensors once, however often a floor is
registered (every load of every month registers its floors again)."""

import threading

import psycopg
import pytest

from bangkok_pipeline.devtools.defects import new_column_name
from bangkok_pipeline.source.catalog import FloorSensors, register_floor
from bangkok_pipeline.source.layout import BUILDING, Channel, floor_columns, parse_column

pytestmark = pytest.mark.integration

FLOOR = 2
BLOCK = 32768  # ids a building draws from: (building_id - 1) * BLOCK + 1 ..


def _channels(columns: list[str]) -> list[Channel]:
    return [c for c in (parse_column(FLOOR, name) for name in columns) if c is not None]


def _second_building(conn: psycopg.Connection, name: str) -> int:
    (building_id,) = conn.execute(
        "INSERT INTO buildings (name) VALUES (%s) RETURNING building_id", (name,)
    ).fetchone() or (0,)
    return int(building_id)


def test_registering_a_floor_again_draws_no_ids_and_a_new_column_draws_one(
    migrated_url: str,
) -> None:
    """Ids follow each other in the building's block without gaps, however often a floor is
    registered (every load of every month registers its floors again)."""
    layout = floor_columns(FLOOR)
    with psycopg.connect(migrated_url, autocommit=True) as conn:
        first = register_floor(conn, FLOOR, _channels(layout))
        assert sorted(first.ids.values()) == list(range(1, len(layout) + 1))
        for _ in range(3):  # what three more loads of the floor do
            assert register_floor(conn, FLOOR, _channels(layout)) == first
        new = new_column_name(FLOOR, layout)
        grown = register_floor(conn, FLOOR, _channels([*layout, new]))
        assert grown.ids == {**first.ids, new: len(layout) + 1}


def test_a_second_building_draws_from_its_own_block_also_when_registering_at_once(
    migrated_url: str,
) -> None:
    """Two buildings registered concurrently: each building's ids are consecutive in its block
    (beyond smallint for the second), none shared."""
    layout = _channels(floor_columns(FLOOR))
    with psycopg.connect(migrated_url, autocommit=True) as conn:
        second = _second_building(conn, "Second building")
    results: dict[str, FloorSensors] = {}

    def register(building: str) -> None:
        with psycopg.connect(migrated_url, autocommit=True) as conn:
            results[building] = register_floor(conn, FLOOR, layout, building)

    threads = [threading.Thread(target=register, args=(b,)) for b in (BUILDING, "Second building")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first_ids = sorted(results[BUILDING].ids.values())
    second_ids = sorted(results["Second building"].ids.values())
    assert first_ids == list(range(1, len(layout) + 1))
    base = (second - 1) * BLOCK
    assert second_ids == list(range(base + 1, base + len(layout) + 1))
    assert second_ids[-1] > 32767
    with (
        psycopg.connect(migrated_url, autocommit=True) as conn,
        pytest.raises(psycopg.errors.CheckViolation),
    ):
        conn.execute("UPDATE sensors SET building_id = 1 WHERE sensor_id = %s", (second_ids[0],))


def test_only_the_masks_of_buildings_whose_sensors_changed_are_recomputed(
    migrated_url: str,
) -> None:
    """Every load registers its floors again: a registration that adds nothing writes no mask,
    and one that adds a building's sensors rewrites only that building's masks."""
    masks = "SELECT building_id, tier, xmin::text FROM private.building_sensor_masks ORDER BY 1, 2"
    layout = _channels(floor_columns(FLOOR))
    with psycopg.connect(migrated_url, autocommit=True) as conn:
        register_floor(conn, FLOOR, layout)
        first = conn.execute(masks).fetchall()
        assert [row[:2] for row in first] == [(1, "free"), (1, "professional")]
        register_floor(conn, FLOOR, layout)
        assert conn.execute(masks).fetchall() == first
        second = _second_building(conn, "Masks building")
        register_floor(conn, FLOOR, layout, "Masks building")
        after = conn.execute(masks).fetchall()
        assert after[:2] == first
        assert [row[:2] for row in after[2:]] == [(second, "free"), (second, "professional")]
        professional = conn.execute(
            "SELECT bit_count(mask) FROM private.building_sensor_masks "
            "WHERE building_id = %s AND tier = 'professional'",
            (second,),
        ).fetchone()
        assert professional == (len(layout),)
