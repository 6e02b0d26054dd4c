"""The CU-BEMS channel layout and the column/file name grammar."""

from bangkok_pipeline.source.layout import (
    FLOORS,
    Channel,
    floor_channels,
    floor_columns,
    parse_column,
    parse_file_name,
)


def test_layout_matches_the_published_counts() -> None:
    counts = {floor: len(floor_columns(floor)) for floor in FLOORS}
    assert counts == {1: 11, 2: 36, 3: 32, 4: 32, 5: 32, 6: 29, 7: 32}
    assert sum(counts.values()) == 204
    zones = {(c.floor, c.zone) for floor in FLOORS for c in floor_channels(floor)}
    assert len(zones) == 33
    assert not any(c.kind in {"temperature", "humidity", "illuminance"} for c in floor_channels(1))


def test_zone_order_is_ac_light_plug_then_s1() -> None:
    assert floor_columns(6)[:6] == [
        "z1_AC1(kW)",
        "z1_Light(kW)",
        "z1_Plug(kW)",
        "z1_S1(degC)",
        "z1_S1(RH%)",
        "z1_S1(lux)",
    ]


def test_parse_column() -> None:
    assert parse_column(5, "z2_AC3(kW)") == Channel(5, 2, "AC3", "ac", "kW", "z2_AC3(kW)")
    assert parse_column(2, "z4_S1(RH%)") == Channel(2, 4, "S1", "humidity", "RH%", "z4_S1(RH%)")
    assert parse_column(2, "z1_S1(lux)").kind == "illuminance"  # type: ignore[union-attr]
    for bad in (
        "Date",
        "z2_CO2(ppm)",
        "z1_AC1(degC)",
        "z0_Light(kW)",
        "z1_Light(kW) ",
        "Z1_Plug(kW)",
    ):
        assert parse_column(1, bad) is None


def test_parse_file_name() -> None:
    source = parse_file_name("2019Floor7.csv")
    assert source is not None and (source.year, source.floor) == (2019, 7)
    for bad in ("2019floor7.csv", "2019Floor7.csv.bak", "Floor7.csv", "2019Floor0.csv"):
        assert parse_file_name(bad) is None
