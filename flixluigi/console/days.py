"""The console's calendar: each day's state, posts and cost, from one snapshot of the stored days.

A range costs its listings (the snapshot's, and one of the failure markers), the compliance state
(one object) and one GET per stored day's pointer; pointers never change once written (a new fetch
writes a new one), so they are cached by key and a calendar shown again reads none of them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import orjson

from flixluigi import config
from flixluigi.compliance.apply import load_state
from flixluigi.dates import day_range
from flixluigi.store.layout import Layout, parse_stamp
from flixluigi.store.s3 import Storage
from flixluigi.store.state import Snapshot, layout
from flixluigi.work import pseudonymizer, sharing

STATES = ("ok", "stale", "missing", "failed", "compliance")
_pointers: dict[str, dict] = {}  # key -> the fields shown of an (immutable) pointer
_lock = threading.Lock()


@dataclass(frozen=True)
class DayView:
    day: date
    state: str
    reason: str  # why the day is not ok, in one line ("" when it is)
    posts: int | None  # posts of the current raw fetch
    cost: float | None  # what its fetch was billed

    def as_json(self) -> dict:
        return {"date": self.day.isoformat(), "state": self.state, "reason": self.reason, "posts": self.posts,
                "cost": self.cost}


def classify(raw: bool, curated: bool, failure: dict | None, built_at: datetime | None, fetched_at: datetime | None,
             checked_at: datetime | None, now: datetime, due_hours: float) -> tuple[str, str]:
    """A day's state and reason. Pure. A failure counts until a build newer than it; a complete day is
    compliance due when neither its fetch nor its last compliance check is within `due_hours`."""
    if failure and (not curated or built_at is None or failure["at"] > built_at):
        return "failed", f"{failure['task']} failed: {failure['error']}"
    if not raw:
        return "missing", "no raw fetch stored"
    if not curated:
        return "stale", "the curated day is not built from the current raw fetch, key and schema"
    latest = max(t for t in (fetched_at, checked_at, datetime.min.replace(tzinfo=UTC)) if t is not None)
    if due_hours > 0 and now - latest > timedelta(hours=due_hours):
        when = f"last checked {checked_at:%Y-%m-%d %H:%M}Z" if checked_at else "never checked"
        return "compliance", f"compliance due: {when}, more than {due_hours:g} h ago"
    return "ok", ""


def _pointer(store: Storage, key: str) -> dict:
    with _lock:
        if key in _pointers:
            return _pointers[key]
    pointer = store.get_json(key)
    shown = {"tweets": pointer.get("tweets"), "cost": pointer.get("cost"), "produced_at": pointer.get("produced_at")}
    with _lock:
        _pointers[key] = shown
    return shown


def _failures(store: Storage, where: Layout, days: set[date]) -> dict[date, dict]:
    """The newest failure marker of each day that has one (markers are few: a success deletes its own)."""
    newest: dict[date, dict] = {}
    for (family, day), key in Layout.failures(list(store.list_keys(where.failures_prefix()))).items():
        if day not in days:
            continue
        found = store.get_bytes_if_exists(key)  # a success may delete it between the listing and the read
        if found is None:
            continue
        marker = orjson.loads(found)
        at = datetime.fromisoformat(marker.get("failed_at", "1970-01-01T00:00:00+00:00"))
        if day not in newest or at > newest[day]["at"]:
            newest[day] = {"task": family, "error": marker.get("error", "?"), "at": at}
    return newest


def calendar(start: date, end: date, now: datetime | None = None) -> list[DayView]:
    """Every day of start..end with its state, posts and cost."""
    days = day_range(start, end)
    store, where = Storage.from_config(), layout()
    state = Snapshot.read(store, where, span=(days[0], days[-1]))
    failures = _failures(store, where, set(days))
    checked = load_state(store, where)["days"]
    key_id, shared = pseudonymizer().key_id, sharing()
    due_hours, now = config.console().compliance_due_hours, now or datetime.now(UTC)
    views = []
    for day in days:
        raw = state.raw_complete(day)
        pointer = _pointer(store, max(state.raw[day].pointers)[2]) if raw and state.raw[day].pointers else {}
        record = state.record(day)
        check = checked.get(day.isoformat(), {}).get("checked_at")
        fetched = pointer.get("produced_at")
        label, reason = classify(raw, state.curated_complete(day, key_id, shared), failures.get(day),
                                 parse_stamp(record[0]) if record else None,
                                 datetime.fromisoformat(fetched) if fetched else None,
                                 datetime.fromisoformat(check) if check else None, now, due_hours)
        views.append(DayView(day, label, reason, pointer.get("tweets"), pointer.get("cost")))
    return views


def totals(views: list[DayView]) -> dict:
    """Days per state, posts and cost of a calendar."""
    return {"days": len(views), **{s: sum(v.state == s for v in views) for s in STATES},
            "posts": sum(v.posts or 0 for v in views), "cost": round(sum(v.cost or 0 for v in views), 4)}
