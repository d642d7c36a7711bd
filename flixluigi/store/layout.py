"""Where every object lives, and what one listing of the raw prefix says about every day.

    <raw>/date=D/fetch=<fetch id>.jsonl.zst         one fetch of a day, written once, never changed (.gz: gzip)
    <raw>/_pointers/date=D/<stamp>--<fetch id>.json  the day's pointer: the newest names the current fetch
    <curated>/                                       the curated Delta table, partitioned by date
    <records>/curated/date=D/<stamp>--<build>.json  a commit of the day: build, rows, duration; the newest is current
    <records>/failed/<Task>/date=D.json              the last failure of a day's task (`current_failure` says if it still counts)
    <records>/counts/month=YYYY-MM.json              the counts endpoint's posts per day of a month
    <records>/compliance/state.json                  per day: when compliance last checked it, what it removed
    <records>/compliance/ledger.json                 what compliance removed, as keyed hashes only

Fetch ids and pointer stamps start with a UTC time, so names sort by age and the newest pointer
of a day is found from key names alone: the completeness of 1,000 days is one listing, not one
GET a day. Pure: no I/O here.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

FETCH_RE = re.compile(r"/date=(\d{4}-\d{2}-\d{2})/fetch=([0-9TZ]+-[0-9a-f]+)\.jsonl\.(gz|zst)$")
POINTER_RE = re.compile(r"/_pointers/date=(\d{4}-\d{2}-\d{2})/([0-9TZ]+)--([0-9TZ]+-[0-9a-f]+)\.json$")
RECORD_RE = re.compile(r"/curated/date=(\d{4}-\d{2}-\d{2})/([0-9TZ]+)--([0-9a-f]+)\.json$")
FAILED_RE = re.compile(r"/failed/(\w+)/date=(\d{4}-\d{2}-\d{2})\.json$")
# flixluigi 0.1's raw day (one object a day, with a manifest), which `flixluigi migrate` converts.
LEGACY_RAW_RE = re.compile(r"/date=(\d{4}-\d{2}-\d{2})/pages\.jsonl\.gz$")


STAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"
# The fetch a 0.1 raw day becomes (`flixluigi migrate`): its stamp is the old object's time.
LEGACY_FETCH_SUFFIX = "00000000"


def stamp(now: datetime | None = None) -> str:
    """UTC time to the microsecond, sortable as text."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime(STAMP_FORMAT)


def parse_stamp(text: str) -> datetime:
    """The UTC time of a stamp, or of a fetch id (which starts with one)."""
    return datetime.strptime(text.split("-")[0], STAMP_FORMAT).replace(tzinfo=UTC)


def new_fetch_id(now: datetime | None = None, suffix: str | None = None) -> str:
    """Unique per fetch, even for two fetches of one day in the same microsecond on two machines."""
    return f"{stamp(now)}-{suffix or secrets.token_hex(4)}"


@dataclass
class RawDay:
    """One day of the raw layer as a listing shows it."""

    pointers: list[tuple[str, str, str]] = field(default_factory=list)  # (stamp, fetch id, key), oldest first
    fetches: dict[str, dict] = field(default_factory=dict)  # fetch id -> listing item (Key, Size, ETag, LastModified)

    @property
    def current(self) -> str | None:
        """The fetch the newest pointer names."""
        return max(self.pointers)[1] if self.pointers else None

    @property
    def complete(self) -> bool:
        """Its pointer names an object that exists."""
        return self.current is not None and self.current in self.fetches


@dataclass(frozen=True)
class Layout:
    raw: str
    curated: str
    records: str

    def fetch_key(self, day: date, fetch_id: str, codec: str = "gz") -> str:
        return f"{self.raw}/date={day.isoformat()}/fetch={fetch_id}.jsonl.{codec}"

    def pointer_key(self, day: date, fetch_id: str, now: datetime | None = None) -> str:
        return f"{self.raw}/_pointers/date={day.isoformat()}/{stamp(now)}--{fetch_id}.json"

    def record_key(self, day: date, build_id: str, now: datetime | None = None) -> str:
        return f"{self.records}/curated/date={day.isoformat()}/{stamp(now)}--{build_id}.json"

    def records_prefix(self) -> str:
        return f"{self.records}/curated/"

    def day_records_prefix(self, day: date) -> str:
        return f"{self.records_prefix()}date={day.isoformat()}/"

    def commit_key(self, version: int) -> str:
        """The table's log entry of a version (Delta's layout)."""
        return f"{self.curated}/_delta_log/{version:020d}.json"

    def failure_key(self, family: str, day: date) -> str:
        return f"{self.records}/failed/{family}/date={day.isoformat()}.json"

    def failures_prefix(self) -> str:
        return f"{self.records}/failed/"

    def counts_key(self, month: date) -> str:
        return f"{self.records}/counts/month={month:%Y-%m}.json"

    def compliance_state_key(self) -> str:
        return f"{self.records}/compliance/state.json"

    def ledger_key(self) -> str:
        return f"{self.records}/compliance/ledger.json"

    def legacy_manifest_key(self, day: date) -> str:
        return f"{self.raw}/_manifests/date={day.isoformat()}.json"

    @staticmethod
    def days_between(prefix: str, first: date, last: date) -> tuple[str, str, str]:
        """(prefix, start_after, until) of a listing of the keys under `prefix`date=D/ for first <= D <= last:
        keys sort by day, and "date=D0" sorts after every key of day D and before the next day's. (Not
        after "date=D" itself: SeaweedFS reads that as its folder and skips the day's keys.)"""
        def end_of(day: date) -> str:
            return f"{prefix}date={day.isoformat()}0"

        return f"{prefix}date=", end_of(first - timedelta(days=1)), end_of(last)

    @staticmethod
    def raw_days(items: list[dict]) -> dict[date, RawDay]:
        """Every day of a listing of the raw prefix, with its pointers and fetch objects."""
        days: dict[date, RawDay] = {}
        for item in items:
            key = item["Key"]
            if match := POINTER_RE.search(key):
                days.setdefault(date.fromisoformat(match.group(1)), RawDay()).pointers.append(
                    (match.group(2), match.group(3), key))
            elif match := FETCH_RE.search(key):
                days.setdefault(date.fromisoformat(match.group(1)), RawDay()).fetches[match.group(2)] = item
        for day in days.values():
            day.pointers.sort()
        return days

    @staticmethod
    def records(keys: list[str]) -> dict[date, list[tuple[str, str, str]]]:
        """Day -> its records as (stamp, build id, key), oldest first, from a listing of the records prefix."""
        found: dict[date, list[tuple[str, str, str]]] = {}
        for key in keys:
            if match := RECORD_RE.search(key):
                found.setdefault(date.fromisoformat(match.group(1)), []).append((match.group(2), match.group(3), key))
        for entries in found.values():
            entries.sort()
        return found

    @staticmethod
    def failures(keys: list[str]) -> dict[tuple[str, date], str]:
        """(task family, day) -> key of its failure marker."""
        return {(m.group(1), date.fromisoformat(m.group(2))): key for key in keys if (m := FAILED_RE.search(key))}


def current_failure(marker: dict, raw: RawDay | None, records: list[tuple[str, str, str]]) -> bool:
    """Whether a failure marker still means "the day's latest attempt failed": any pointer or record
    written after the failed attempt began outdates it, whatever task wrote it (a later CuratedTweets
    mends a failed Reprocess). The attempt's start is compared, not the marker's write: a slow failing
    task that writes its marker late cannot win over a success that finished meanwhile."""
    began = marker.get("started_at") or marker.get("failed_at")
    if not began:
        return True
    newest = max([entry[0] for entry in (raw.pointers if raw else [])] + [entry[0] for entry in records], default="")
    return stamp(datetime.fromisoformat(began)) > newest
