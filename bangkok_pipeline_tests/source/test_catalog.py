"""The sensor catalog: a header's channels become sensors once, however often a floor is
registered (every load of every month registers its floors again)."""

import psycopg
import pytest

from bangkok_pipeline.devtools.defects import new_column_name
from bangkok_pipeline.source.catalog import register_floor
from bangkok_pipeline.source.layout import Channel, floor_columns, parse_column

pytestmark = pytest.mark.integration

FLOOR = 2
LAST_ID = (
    "SELECT last_value FROM pg_sequences "
    "WHERE format('%I.%I', schemaname, sequencename)::regclass "
    "= pg_get_serial_sequence('sensors', 'sensor_id')::regclass"
)


def _channels(columns: list[str]) -> list[Channel]:
    return [c for c in (parse_column(FLOOR, name) for name in columns) if c is not None]


def test_registering_a_floor_again_draws_no_ids_and_a_new_column_draws_one(
    migrated_url: str,
) -> None:
    layout = floor_columns(FLOOR)
    with psycopg.connect(migrated_url, autocommit=True) as conn:
        first = register_floor(conn, FLOOR, _channels(layout))
        drawn = conn.execute(LAST_ID).fetchone()
        assert drawn == (len(layout),) and sorted(first.ids.values()) == list(range(1, 37))
        for _ in range(3):  # what three more loads of the floor do
            assert register_floor(conn, FLOOR, _channels(layout)) == first
        assert conn.execute(LAST_ID).fetchone() == drawn
        new = new_column_name(FLOOR, layout)
        grown = register_floor(conn, FLOOR, _channels([*layout, new]))
        assert grown.ids == {**first.ids, new: len(layout) + 1}
        assert conn.execute(LAST_ID).fetchone() == (len(layout) + 1,)
