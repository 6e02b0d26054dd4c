"""Month specs as users type them and Bangkok-local month bounds."""

from datetime import date, datetime, timedelta

import pytest

from bangkok_pipeline.core.months import (
    MonthSpecError,
    minutes_in_month,
    month_bounds,
    parse_months,
)


def test_range_list_and_single() -> None:
    assert parse_months("2018-11..2019-02") == [
        date(2018, 11, 1),
        date(2018, 12, 1),
        date(2019, 1, 1),
        date(2019, 2, 1),
    ]
    assert parse_months("2019-03, 2018-07") == [date(2018, 7, 1), date(2019, 3, 1)]
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


def test_bounds_are_bangkok_midnight() -> None:
    start, end = month_bounds(date(2019, 12, 1))
    assert start.utcoffset() == timedelta(hours=7)
    assert start == datetime.fromisoformat("2019-11-30T17:00:00+00:00")
    assert end == datetime.fromisoformat("2019-12-31T17:00:00+00:00")
    assert minutes_in_month(date(2019, 2, 1)) == 28 * 1440
