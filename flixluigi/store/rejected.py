"""Fetches refused at the API boundary, kept for inspection outside what completeness lists.

    <records>/rejected/date=D/<fetch id>.json   why the fetch was refused, the posts it read (billed)
                                                and their cost, the request metadata of its pages,
                                                and the refused page as the API sent it (if JSON)

No listing of the raw prefix or of the day records counts them, no pointer names them, so none
ever becomes current. They hold personal data: `flixluigi vacuum` deletes them once as old as
the superseded raw fetches it deletes, the compliance purge with their day. The next good fetch of
the day adds their cost to its own; `flixluigi verify` notes them. A day whose last
`[xapi] max_rejections` fetches in a row were refused is not fetched again (each is billed)
until `Reprocess --refetch`.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from flixluigi.store.layout import Layout, parse_stamp
from flixluigi.store.s3 import Storage
from flixluigi.store.state import raw_day

REJECTED_RE = re.compile(r"/rejected/date=(\d{4}-\d{2}-\d{2})/([0-9TZ]+-[0-9a-f]+)\.json$")


def prefix(where: Layout, day: date | None = None) -> str:
    return f"{where.records}/rejected/" + (f"date={day.isoformat()}/" if day else "")


def keep(store: Storage, where: Layout, day: date, fetch_id: str, record: dict) -> str:
    """Store a refused fetch's record; returns its key."""
    key = f"{prefix(where, day)}{fetch_id}.json"
    store.put_json(key, record)
    return key


def in_a_row(store: Storage, where: Layout, day: date) -> list[str]:
    """Keys of the day's refused fetches since its current fetch was made (all, if none is), oldest first."""
    current = raw_day(store, where, day).current
    return sorted(key for key in store.list_keys(prefix(where, day))
                  if (match := REJECTED_RE.search(key)) and (current is None or match.group(2) > current))


def stored(store: Storage, where: Layout) -> list[tuple[date, datetime, str]]:
    """Every refused fetch: (day, when it was made, key), oldest first."""
    found = [(date.fromisoformat(m.group(1)), parse_stamp(m.group(2)), key)
             for key in store.list_keys(prefix(where)) if (m := REJECTED_RE.search(key))]
    return sorted(found)


def notes(store: Storage, where: Layout, start: date, end: date) -> list[str]:
    """One `note:` line per refused fetch of the range (not a problem of the stored days: never current)."""
    lines = []
    for day, _made, key in stored(store, where):
        if start <= day <= end:
            record = store.get_json(key)
            lines.append(f"note: {day}: fetch {record.get('fetch')} was rejected ({record.get('error')}); kept for "
                         f"inspection at {store.url(key)} until flixluigi vacuum")
    return lines
