"""Months: the `Month` value (key `YYYY-MM`, first day, Bangkok-local bounds, partition suffix),
month ranges as users type them.

A `Month` is a query parameter as it is: psycopg sends its first day as a `date` (the dumpers
registered below), so `conn.execute(..., {"month": month})` matches `month date` columns. Rows read
back as `date` become months with `Month.of(row["month"])`.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.abc import Buffer
from psycopg.types.datetime import DateBinaryDumper, DateDumper

from bangkok_pipeline.core.settings import BANGKOK_TZ, DATA_FIRST_MONTH, last_month

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class MonthSpecError(ValueError):
    """A `--months` value that cannot be read or falls outside what is allowed."""


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month; ordered by time, hashable, `str()` is its `YYYY-MM` key."""

    year: int
    number: int  # 1..12

    def __post_init__(self) -> None:
        if not 1 <= self.number <= 12:
            raise ValueError(f"month number {self.number} outside 1..12")

    @classmethod
    def parse(cls, text: str) -> "Month":
        """`2018-07` -> Month(2018, 7)."""
        match = _MONTH.match(text.strip())
        if not match or not 1 <= int(match.group(2)) <= 12:
            raise MonthSpecError(f"{text!r} is not a month; expected YYYY-MM, for example 2018-07")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, moment: date | datetime) -> "Month":
        """The month of a date or naive datetime; an aware datetime counts in Bangkok time."""
        if isinstance(moment, datetime) and moment.tzinfo is not None:
            moment = moment.astimezone(BANGKOK_TZ)
        return cls(moment.year, moment.month)

    @property
    def key(self) -> str:
        """`2018-07`: partition keys, file layers, the CLI."""
        return f"{self.year:04d}-{self.number:02d}"

    def __str__(self) -> str:
        return self.key

    @property
    def suffix(self) -> str:
        """`y2018m07`: the suffix of the month's partition tables."""
        return f"y{self.year:04d}m{self.number:02d}"

    @property
    def first_day(self) -> date:
        return date(self.year, self.number, 1)

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        """Start (inclusive) and end (exclusive) in Bangkok local time."""
        end = self.next()
        return (
            datetime(self.year, self.number, 1, tzinfo=BANGKOK_TZ),
            datetime(end.year, end.number, 1, tzinfo=BANGKOK_TZ),
        )

    @property
    def minutes(self) -> int:
        start, end = self.bounds
        return int((end - start).total_seconds() // 60)

    def next(self) -> "Month":
        return Month(self.year + self.number // 12, self.number % 12 + 1)

    def previous(self) -> "Month":
        return Month(self.year - (self.number == 1), (self.number - 2) % 12 + 1)


def month_range(first: Month, last: Month) -> list[Month]:
    """`first`..`last`, both included (empty if `last` is before `first`)."""
    months = []
    current = first
    while current <= last:
        months.append(current)
        current = current.next()
    return months


def parse_months(
    spec: str, lowest: str = DATA_FIRST_MONTH, highest: str | None = None
) -> list[Month]:
    """Read `2018-07..2019-12`, `2018-07`, or a comma list of either, within [lowest, highest]
    (default: the month partitions, which `CUBEMS_LAST_MONTH` extends)."""
    highest = highest or last_month()
    low, high = Month.parse(lowest), Month.parse(highest)
    months: set[Month] = set()
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if ".." in part:
            start_text, _, end_text = part.partition("..")
            start, end = Month.parse(start_text), Month.parse(end_text)
            if end < start:
                raise MonthSpecError(f"{part!r} ends before it starts")
            months.update(month_range(start, end))
        else:
            months.add(Month.parse(part))
    if not months:
        raise MonthSpecError(f"{spec!r} names no month; expected e.g. 2018-07..2019-12")
    outside = sorted(m for m in months if not low <= m <= high)
    if outside:
        raise MonthSpecError(
            f"{', '.join(str(m) for m in outside)} outside the month partitions "
            f"({lowest}..{highest}; CUBEMS_LAST_MONTH moves their end)"
        )
    return sorted(months)


class _MonthDumper(DateDumper):
    def dump(self, obj: Any) -> Buffer | None:
        return super().dump(obj.first_day if isinstance(obj, Month) else obj)


class _MonthBinaryDumper(DateBinaryDumper):
    def dump(self, obj: Any) -> Buffer | None:
        return super().dump(obj.first_day if isinstance(obj, Month) else obj)


# Global adapters: every connection opened after this module is imported sends a Month as a date.
psycopg.adapters.register_dumper(Month, _MonthDumper)
psycopg.adapters.register_dumper(Month, _MonthBinaryDumper)
