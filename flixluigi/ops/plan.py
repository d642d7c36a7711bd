"""The dry run of Backfill, Reprocess and Compliance: what each day would get, and what it would cost.

Expected posts come from the months' stored counts only: a counts request is billed, and a dry
run must cost nothing. A day to fetch whose month has no stored counts is "unknown". Used by
`flixluigi plan` and by the web console, which shows it before asking to confirm a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from flixluigi import config
from flixluigi.dates import day_range
from flixluigi.store.s3 import Storage
from flixluigi.store.state import Snapshot, layout
from flixluigi.work import backfill_days, pseudonymizer, reprocess_action, sharing, stored_counts
from flixluigi.xapi.billing import cost

TASKS = ("Backfill", "Reprocess", "Compliance")


@dataclass(frozen=True)
class PlannedDay:
    day: date
    action: str
    reads_api: bool  # fetches posts (billed per post read)
    expected_posts: int | None  # from the month's stored counts; None: unknown


@dataclass(frozen=True)
class Plan:
    task: str
    start: date
    end: date
    refetch: bool
    days: list[PlannedDay]

    @property
    def fetched(self) -> list[PlannedDay]:
        return [d for d in self.days if d.reads_api]

    @property
    def expected_posts(self) -> int:
        """Posts expected of the days to fetch whose counts are stored."""
        return sum(d.expected_posts or 0 for d in self.fetched)

    @property
    def unknown(self) -> list[date]:
        return [d.day for d in self.fetched if d.expected_posts is None]

    @property
    def cost(self) -> float:
        """USD of the posts expected (the unknown days' not included)."""
        return round(cost(self.expected_posts, 0, config.xapi().price_per_post, 0.0), 4)

    def cost_line(self) -> str:
        """The cost spelled out, as the console asks to confirm it."""
        if not self.fetched:
            return f"{self.task} {self.start}..{self.end} reads no post from the API: no cost"
        unknown = (f"; unknown for {len(self.unknown)} day(s) with no stored counts ({', '.join(map(str, self.unknown[:5]))}"
                   f"{', ...' if len(self.unknown) > 5 else ''}), billed on top") if self.unknown else ""
        return (f"{self.task} {self.start}..{self.end} reads the X API for {len(self.fetched)} day(s): "
                f"{self.expected_posts} posts expected, about ${self.cost:.2f}{unknown}")

    def lines(self) -> list[str]:
        def posts(d: PlannedDay) -> str:
            return "" if not d.reads_api else " (posts unknown)" if d.expected_posts is None else \
                f" ({d.expected_posts} posts expected)"

        return [f"dry run: {d.day}: {d.action}{posts(d)}" for d in self.days] + [self.cost_line()]

    def as_json(self) -> dict:
        return {"task": self.task, "start": self.start.isoformat(), "end": self.end.isoformat(), "refetch": self.refetch,
                "days": [{"date": d.day.isoformat(), "action": d.action, "reads_api": d.reads_api,
                          "expected_posts": d.expected_posts} for d in self.days],
                "expected_posts": self.expected_posts, "unknown_days": [str(d) for d in self.unknown],
                "cost": self.cost, "cost_line": self.cost_line()}


def _backfill_action(state: Snapshot, day: date, key_id: str, shared: str) -> tuple[str, bool]:
    if state.curated_complete(day, key_id, shared):
        return "complete: skipped", False
    if state.raw_complete(day):
        return f"build from stored raw fetch {state.raw[day].current}", False
    return "fetch from the API, then build", True


def plan(task: str, start: date, end: date | None = None, refetch: bool = False) -> Plan:
    """What `task` would do over start..end (end default: start), from one snapshot of the range."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    days = day_range(start, end)
    store = Storage.from_config()
    state = Snapshot.read(store, layout(), span=(days[0], days[-1]))
    counts: dict[str, dict[str, int]] = {}  # month -> its stored counts, read once

    def expected(day: date) -> int | None:
        month = f"{day:%Y-%m}"
        if month not in counts:
            counts[month] = stored_counts(store, day)
        return counts[month].get(day.isoformat())

    planned = []
    if task == "Backfill":
        key_id, shared = pseudonymizer().key_id, sharing()
        wanted = set(backfill_days(state, days, f"Backfill {start}..{days[-1]}"))
        for day in days:
            action, reads = _backfill_action(state, day, key_id, shared) if day in wanted else \
                ("skipped: the configured endpoint cannot serve it", False)
            planned.append(PlannedDay(day, action, reads, expected(day) if reads else None))
    elif task == "Reprocess":
        for day in days:
            planned.append(PlannedDay(day, reprocess_action(state, day, refetch), refetch, expected(day) if refetch else None))
    else:
        for day in days:
            action = "check its stored post and user ids with X's batch compliance (reads no post)" \
                if state.raw_complete(day) else "nothing stored: skipped"
            planned.append(PlannedDay(day, action, False, None))
    return Plan(task, start, days[-1], refetch, planned)
