"""UTC days: the one builder of day ranges and months every command and task uses. Pure."""

from __future__ import annotations

from datetime import date, timedelta

from flixluigi.errors import InvalidRange


def day_range(start: date, end: date | None = None) -> list[date]:
    """Every day from `start` to `end` inclusive (default: `start` alone); refuses a reversed range."""
    last = start if end is None else end
    if last < start:
        raise InvalidRange(f"--end {last} is before --start {start}; give the range oldest day first")
    return [start + timedelta(days=n) for n in range((last - start).days + 1)]


def month_of(day: date) -> list[date]:
    """Every day of the day's month."""
    first = day.replace(day=1)
    return day_range(first, (first + timedelta(days=32)).replace(day=1) - timedelta(days=1))


def compact(days: list[date]) -> str:
    """Days as runs of consecutive ones: "2022-09-12..2022-09-14, 2022-09-20" (a summary of 1,000 days stays a line)."""
    spans: list[list[date]] = []
    for day in sorted(set(days)):
        if spans and day - spans[-1][1] == timedelta(days=1):
            spans[-1][1] = day
        else:
            spans.append([day, day])
    return ", ".join(f"{first}..{last}" if first != last else str(first) for first, last in spans)
