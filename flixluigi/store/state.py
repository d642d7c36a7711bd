"""What is stored and what is complete, for one day or 1,000, in a constant number of requests.

A raw day is complete when its newest pointer names a fetch object that exists. A curated day
is complete when its newest record, written right after the day's table commit and naming the
commit's build, names the build that the current raw fetch, the configured key, the schema
version and the sharing options call for. Listings answer for any number of days: of a range's
keys only (each starts at its first day and stops after its last), or of one day's own keys.

Why records and not the table itself: the scheduling process must not touch `deltalake`, whose
runtime does not survive the fork of `--workers N` (its children panic). Whether the table really
holds each recorded build is what `flixluigi verify` checks, from one read of the table state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime

import orjson

from flixluigi import config
from flixluigi._version import __version__
from flixluigi.curation.schema import SCHEMA_VERSION
from flixluigi.store.layout import Layout, RawDay
from flixluigi.store.s3 import Storage

DAY_KEY = "flixluigi.day"  # commit metadata: the day a table version wrote
REASON_KEY = "flixluigi.reason"  # commit metadata: why it exists (fetch, rebuild, reprocess, compliance, restore)


@dataclass(frozen=True)
class Version:
    """One commit of the table that wrote a day."""

    version: int
    timestamp: int | None
    rows: int | None
    metadata: dict


@dataclass(frozen=True)
class Build:
    """What a curated day is built from; any change makes the stored day stale."""

    raw_fetch: str
    key_id: str
    schema_version: int
    sharing: str

    @property
    def id(self) -> str:
        """Short and constant per day: it fits Delta's 32-character statistics of strings."""
        text = f"{self.raw_fetch}|{self.key_id}|{self.schema_version}|{self.sharing}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def as_metadata(self) -> dict[str, str]:
        return {"flixluigi.build_id": self.id, "flixluigi.raw_fetch": self.raw_fetch, "flixluigi.key_id": self.key_id,
                "flixluigi.schema_version": str(self.schema_version), "flixluigi.sharing": self.sharing}


def curated_record(day: date, build: Mapping[str, str], table_version: int | None, rows: int, duration_seconds: float,
                   **details: object) -> dict:
    """The record of a day's commit (`build` as the commit's metadata names it): what makes the
    day complete for the snapshot, written by curation and by restore alike."""
    return {"date": day.isoformat(), "build_id": build.get("flixluigi.build_id", ""),
            "raw_fetch": build.get("flixluigi.raw_fetch", ""), "pseudonym_key_id": build.get("flixluigi.key_id"),
            "schema_version": int(build.get("flixluigi.schema_version", 0)), "sharing": build.get("flixluigi.sharing"),
            "table_version": table_version, "rows": rows, **details, "duration_seconds": round(duration_seconds, 3),
            "client_version": __version__, "produced_at": datetime.now(UTC).isoformat()}


def layout() -> Layout:
    cfg = config.storage()
    return Layout(cfg.raw_prefix.strip("/"), cfg.curated_prefix.strip("/"), cfg.records_prefix.strip("/"))


@dataclass
class Snapshot:
    """The stored state of every day, read once."""

    raw: dict[date, RawDay]
    records: dict[date, list[tuple[str, str, str]]]

    @classmethod
    def read(cls, store: Storage, where: Layout, curated: bool = True, span: tuple[date, date] | None = None) -> Snapshot:
        """Every day's state, or only the days of `span` (first, last): then each listing starts at
        the first day's keys and stops after the last's, so a range costs what its own keys cost."""
        if span is None:
            raw = Layout.raw_days(list(store.list(where.raw + "/")))
            records = Layout.records(list(store.list_keys(where.records_prefix()))) if curated else {}
            return cls(raw, records)
        raw = Layout.raw_days([item for prefix in (f"{where.raw}/_pointers/", f"{where.raw}/")
                               for item in store.list(*Layout.days_between(prefix, *span))])
        records = Layout.records([item["Key"] for item in store.list(*Layout.days_between(where.records_prefix(), *span))]) \
            if curated else {}
        return cls(raw, records)

    @classmethod
    def read_day(cls, store: Storage, where: Layout, day: date, curated: bool = True) -> Snapshot:
        """One day's stored state from its own keys only (three small listings): a single day's
        question must not cost a listing of every day."""
        records = Layout.records(list(store.list_keys(where.day_records_prefix(day)))) if curated else {}
        return cls({day: raw_day(store, where, day)}, records)

    def raw_complete(self, day: date) -> bool:
        return day in self.raw and self.raw[day].complete

    def expected(self, day: date, key_id: str, sharing: str) -> Build | None:
        """The build the day should hold now; None while it has no raw fetch."""
        current = self.raw[day].current if self.raw_complete(day) else None
        return Build(current, key_id, SCHEMA_VERSION, sharing) if current else None

    def record(self, day: date) -> tuple[str, str, str] | None:
        """The day's newest record: (stamp, build id, key)."""
        entries = self.records.get(day)
        return entries[-1] if entries else None

    def curated_complete(self, day: date, key_id: str, sharing: str) -> bool:
        build, record = self.expected(day, key_id, sharing), self.record(day)
        return build is not None and record is not None and record[1] == build.id


def snapshot(curated: bool = True, days: list[date] | None = None) -> Snapshot:
    """The stored state under the configured bucket and prefixes (records only with `curated`): of
    every day, or of the span of `days` (from that day's keys alone for one day)."""
    store, where = Storage.from_config(), layout()
    if days is not None and not days:
        return Snapshot({}, {})
    if days is not None and len(days) == 1:
        return Snapshot.read_day(store, where, days[0], curated=curated)
    return Snapshot.read(store, where, curated=curated, span=(min(days), max(days)) if days else None)


def point(store: Storage, day: date, fetch_id: str, pointer: dict) -> None:
    """Make a stored fetch the day's current one (the newest pointer wins)."""
    store.put_json(layout().pointer_key(day, fetch_id), pointer)


def pointer_of(store: Storage, stored: RawDay | None) -> dict | None:
    return store.get_json(max(stored.pointers)[2]) if stored and stored.pointers else None


def record_of(store: Storage, state: Snapshot, day: date) -> dict | None:
    record = state.record(day)
    return store.get_json(record[2]) if record else None


def current(store: Storage, day: date) -> tuple[dict | None, dict | None]:
    """The day's newest curated record and its current raw pointer (no table read: safe before a fork)."""
    state = Snapshot.read_day(store, layout(), day)
    return record_of(store, state, day), pointer_of(store, state.raw[day])


def raw_day(store: Storage, where: Layout, day: date) -> RawDay:
    """One day's pointers and fetch objects, from two small listings."""
    iso = day.isoformat()
    items = [*store.list(f"{where.raw}/_pointers/date={iso}/"), *store.list(f"{where.raw}/date={iso}/")]
    return Layout.raw_days(items).get(day, RawDay())


def day_versions(store: Storage, where: Layout, day: date) -> list[Version]:
    """Every commit that wrote the day and is still in the table's log, newest first. The day's
    records name their commits (curation, restore and compliance write one after each), so only the
    day's own versions are read: one listing, then a GET of each record and of its commit's log
    entry, whatever the number of versions of other days (a commit whose writer died before its
    record is not listed: its day was rebuilt by the next run)."""
    found: dict[int, Version] = {}
    for _stamp, _build, key in Layout.records(list(store.list_keys(where.day_records_prefix(day)))).get(day, []):
        number = store.get_json(key).get("table_version")
        if number is None or number in found:
            continue
        entry = store.get_bytes_if_exists(where.commit_key(number))  # None once the log's retention removed it
        info = next((line["commitInfo"] for line in map(orjson.loads, entry.splitlines()) if "commitInfo" in line), {}) \
            if entry else {}
        if info.get(DAY_KEY) == day.isoformat():
            found[number] = Version(number, info.get("timestamp"), info.get("operationMetrics", {}).get("num_added_rows"),
                                    {k: v for k, v in info.items() if k.startswith("flixluigi.")})
    return [found[number] for number in sorted(found, reverse=True)]
