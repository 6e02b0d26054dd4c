"""The Month value, month specs as users type them, and Bangkok-local month bounds."""

from datetime import date, datetime, timedelta

import psycopg
import pytest

from bangkok_pipeline.core.months import Month, MonthSpecError, month_range, parse_months


def test_range_list_and_single() -> None:
    assert parse_months("2018-11..2019-02") == [
        Month(2018, 11),
        Month(2018, 12),
        Month(2019, 1),
        Month(2019, 2),
    ]
    assert parse_months("2019-03, 2018-07") == [Month(2018, 7), Month(2019, 3)]
    assert len(parse_months("2018-07..2019-12")) == 18


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("july", "'july' is not a month; expected YYYY-MM"),
        ("2018-13", "'2018-13' is not a month"),
        ("2019-02..2018-09", "ends before it starts"),
        ("2018-01..2018-07", "2018-01, 2018-02, 2018-03, 2018-04, 2018-05, 2018-06 outside"),
        ("2020-01", "2020-01 outside the month partitions (2018-07..2019-12; CUBEMS_LAST_MONTH"),
        (" , ", "names no month"),
    ],
)
def test_bad_specs_say_what_was_expected(spec: str, message: str) -> None:
    with pytest.raises(MonthSpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_months(spec)


@pytest.mark.parametrize("text", ["july", "2018-13", "2018-00", "2018-7", "18-07", ""])
def test_parse_rejects_what_is_not_a_month(text: str) -> None:
    with pytest.raises(MonthSpecError, match=f"{text!r} is not a month; expected YYYY-MM"):
        Month.parse(text)


def test_parse_key_and_representations() -> None:
    month = Month.parse(" 2018-07 ")
    assert month == Month(2018, 7)
    assert str(month) == month.key == "2018-07"
    assert f"{month}" == "2018-07"
    assert month.first_day == date(2018, 7, 1)
    assert month.suffix == "y2018m07"
    assert month.year == 2018
    assert month.number == 7
    assert Month.parse(str(month)) == month


def test_of_dates_and_datetimes() -> None:
    assert Month.of(date(2019, 2, 28)) == Month(2019, 2)
    assert Month.of(datetime(2019, 12, 31, 23, 59)) == Month(2019, 12)
    # an aware instant counts in Bangkok time: 17:00 UTC on 31 December is New Year in Bangkok
    assert Month.of(datetime.fromisoformat("2019-12-31T17:00:00+00:00")) == Month(2020, 1)


def test_bounds_are_bangkok_midnight() -> None:
    start, end = Month(2019, 12).bounds
    assert start.utcoffset() == timedelta(hours=7)
    assert start == datetime.fromisoformat("2019-11-30T17:00:00+00:00")
    assert end == datetime.fromisoformat("2019-12-31T17:00:00+00:00")
    assert Month(2019, 12).bounds[1] == Month(2020, 1).bounds[0]
    assert Month(2019, 2).minutes == 28 * 1440
    assert Month(2020, 2).minutes == 29 * 1440


def test_next_previous_across_the_year() -> None:
    assert Month(2019, 12).next() == Month(2020, 1)
    assert Month(2020, 1).previous() == Month(2019, 12)
    assert Month(2019, 5).next().previous() == Month(2019, 5)
    assert month_range(Month(2018, 11), Month(2019, 2))[-1] == Month(2019, 2)
    assert month_range(Month(2019, 2), Month(2018, 11)) == []


def test_ordered_and_hashable() -> None:
    months = [Month(2019, 1), Month(2018, 12), Month(2018, 7)]
    assert sorted(months) == [Month(2018, 7), Month(2018, 12), Month(2019, 1)]
    assert Month(2018, 12) < Month(2019, 1) < Month(2019, 10)
    assert len({Month(2018, 7), Month.parse("2018-07"), Month.of(date(2018, 7, 9))}) == 1
    with pytest.raises(ValueError, match="outside 1..12"):
        Month(2018, 13)


def test_psycopg_sends_a_month_as_its_first_day(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT %(month)s::date, pg_typeof(%(month)s), %(month)s = date '2019-02-01'",
            {"month": Month(2019, 2)},
        ).fetchone()
        assert row == (date(2019, 2, 1), "date", True)
        for binary in (False, True):
            cursor = conn.cursor(binary=binary)
            (back,) = cursor.execute("SELECT %s", [Month(2019, 12)]).fetchone() or (None,)
            assert back == date(2019, 12, 1)
            assert Month.of(back) == Month(2019, 12)
