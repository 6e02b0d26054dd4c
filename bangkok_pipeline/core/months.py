"""Month keys (`YYYY-MM`), month ranges as users type them, and their Bangkok-local bounds."""

import re
from datetime import date, datetime

from bangkok_pipeline.core.settings import BANGKOK_TZ, DATA_FIRST_MONTH, last_month

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class MonthSpecError(ValueError):
    """A `--months` value that cannot be read or falls outside what is allowed."""


def parse_month(text: str) -> date:
    """`2018-07` -> date(2018, 7, 1)."""
    match = _MONTH.match(text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise MonthSpecError(f"{text!r} is not a month; expected YYYY-MM, for example 2018-07")
    return date(int(match.group(1)), int(match.group(2)), 1)


def month_key(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def month_range(first: date, last: date) -> list[date]:
    months = []
    current = first
    while current <= last:
        months.append(current)
        current = next_month(current)
    return months


def parse_months(
    spec: str, lowest: str = DATA_FIRST_MONTH, highest: str | None = None
) -> list[date]:
    """Read `2018-07..2019-12`, `2018-07`, or a comma list of either, within [lowest, highest]
    (default: the month partitions, which `CUBEMS_LAST_MONTH` extends)."""
    highest = highest or last_month()
    low, high = parse_month(lowest), parse_month(highest)
    months: set[date] = set()
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if ".." in part:
            start_text, _, end_text = part.partition("..")
            start, end = parse_month(start_text), parse_month(end_text)
            if end < start:
                raise MonthSpecError(f"{part!r} ends before it starts")
            months.update(month_range(start, end))
        else:
            months.add(parse_month(part))
    if not months:
        raise MonthSpecError(f"{spec!r} names no month; expected e.g. 2018-07..2019-12")
    outside = sorted(m for m in months if not low <= m <= high)
    if outside:
        raise MonthSpecError(
            f"{', '.join(month_key(m) for m in outside)} outside the month partitions "
            f"({lowest}..{highest}; CUBEMS_LAST_MONTH moves their end)"
        )
    return sorted(months)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """Start (inclusive) and end (exclusive) of a month in Bangkok local time."""
    end = next_month(month)
    return (
        datetime(month.year, month.month, 1, tzinfo=BANGKOK_TZ),
        datetime(end.year, end.month, 1, tzinfo=BANGKOK_TZ),
    )


def minutes_in_month(month: date) -> int:
    start, end = month_bounds(month)
    return int((end - start).total_seconds() // 60)
