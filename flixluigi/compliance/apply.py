"""Honouring deletions on stored days: batch compliance results applied to raw and curated days.

For a range of stored days: the post and user ids of each day's current raw fetch go to X's batch
compliance jobs; a day with affected posts or users gets a new raw fetch without them (everything
else byte-identical, written once like any fetch, then pointed at) and is rebuilt from it as a
new commit of the table, so the curated day is the current raw fetch's curation, as always. Days
without affected ids are not rewritten. Removed ids are remembered only as keyed hashes (the
ledger); one state object says per day when it was last checked and what was removed. Versions and
older raw fetches that still hold removed posts are purged once older than `[compliance]
purge_after_hours`: compliance purging wins over `[storage] keep_versions_days`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import orjson

from flixluigi import config
from flixluigi.compliance.rules import Ledger, Summary, Verdicts, apply_lines, ids_to_check
from flixluigi.curation.pseudonym import load_key
from flixluigi.dates import day_range
from flixluigi.errors import StorageError
from flixluigi.store import rejected
from flixluigi.store.lake import CuratedTable
from flixluigi.store.layout import Layout, RawDay, new_fetch_id
from flixluigi.store.rawio import compressed, open_raw
from flixluigi.store.s3 import Storage
from flixluigi.store.state import Snapshot, layout, point, pointer_of
from flixluigi.work import Reporter, curate_day, pseudonymizer
from flixluigi.xapi.compliance import ComplianceClient


class _Unchanged(Exception):
    """Aborts the upload of a fetch that compliance left as it was."""


def load_state(store: Storage, where: Layout) -> dict:
    key = where.compliance_state_key()
    return store.get_json(key) if store.exists(key) else {"days": {}}


def _lines(store: Storage, key: str) -> Iterator[bytes]:
    with open_raw(store, key) as raw:
        yield from raw


def _day_ids(store: Storage, stored: RawDay) -> tuple[set[str], set[str]]:
    return ids_to_check(orjson.loads(line) for line in _lines(store, stored.fetches[stored.current]["Key"]))


def _rewrite(store: Storage, where: Layout, day: date, stored: RawDay, verdicts: Verdicts) -> Summary:
    """A new fetch of the day without what the verdicts remove, pointed at; nothing when unaffected."""
    summary = Summary()
    source = stored.fetches[stored.current]["Key"]
    fetch_id = new_fetch_id()
    codec = config.storage().raw_codec
    key = where.fetch_key(day, fetch_id, codec)
    try:
        with store.upload(key) as sink, compressed(sink, codec) as raw:
            for line in apply_lines(_lines(store, source), verdicts, summary):
                raw.write(line if line.endswith(b"\n") else line + b"\n")
            if not summary.changed:
                raise _Unchanged
    except _Unchanged:
        return summary
    pointer = pointer_of(store, stored) or {}
    point(store, day, fetch_id, {**pointer, "fetch": fetch_id, "object": key, "etag": sink.etag, "size": sink.size,
                                 "derived_from": stored.current, "compliance": summary.counts(),
                                 "produced_at": datetime.now(UTC).isoformat()})
    return summary


def removals(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    """What compliance removed, flat: "posts deleted", "users suspended", "rows removed" -> count."""
    return {f"{'posts' if kind == 'tweets' else kind} {reason}": count
            for kind, reasons in counts.items() for reason, count in sorted(reasons.items()) if count}


def comply(start: date, end: date, report: Reporter) -> tuple[list[date], dict[date, dict[str, int]]]:
    """Check every stored day from start to end inclusive and apply the results; returns the days
    checked and what this run removed from each affected day (`removals`)."""
    cfg, xcfg = config.compliance(), config.xapi()
    store, where, table = Storage.from_config(), layout(), CuratedTable.from_config()
    key = pseudonymizer()
    snapshot = Snapshot.read(store, where, curated=False, span=(start, end))
    days = [day for day in day_range(start, end) if snapshot.raw_complete(day)]
    ids = {day: _day_ids(store, snapshot.raw[day]) for day in days}
    client = ComplianceClient(xcfg.base_url, os.environ.get(xcfg.token_env, ""), poll_interval=cfg.poll_interval,
                              poll_timeout=cfg.poll_timeout, max_ids_per_job=cfg.max_ids_per_job,
                              max_rate_limit_wait=xcfg.max_rate_limit_wait, on_status=report.progress)
    name = f"flixluigi-{start}-{end}"
    verdicts = Verdicts.from_records(
        client.check("tweets", sorted({i for tweets, _ in ids.values() for i in tweets}), name=name),
        client.check("users", sorted({i for _, users in ids.values() for i in users}), name=name))
    state = load_state(store, where)
    ledger = Ledger(load_key(config.pseudonym().key_env, config.pseudonym().key_file),
                    store.get_json(where.ledger_key())["entries"] if store.exists(where.ledger_key()) else ())
    now = datetime.now(UTC)
    removed: dict[date, dict[str, int]] = {}
    for number, day in enumerate(days, 1):
        summary = _rewrite(store, where, day, snapshot.raw[day], verdicts) if verdicts else Summary()
        entry = state["days"].setdefault(day.isoformat(), {"removed": {}})
        entry["checked_at"] = now.isoformat()
        if summary.changed:
            removed[day] = removals(summary.counts())
            curate_day(store, table, day, key, report, reason="compliance", compliance_removed=removed[day])
            ledger.record(summary, day, now)
            entry.update(applied_at=now.isoformat(), purged=False)
            for kind, counts in summary.counts().items():
                for reason, count in counts.items():
                    entry["removed"].setdefault(kind, {})[reason] = entry["removed"].get(kind, {}).get(reason, 0) + count
        report.progress(f"compliance: {number}/{len(days)} days checked", 100 * number // max(len(days), 1))
    store.put_json(where.ledger_key(), {"key_id": ledger.key_id, "entries": ledger.entries})
    store.put_json(where.compliance_state_key(), state)
    purge(store, where, table, state, cfg.purge_after_hours)
    return days, removed


def purge(store: Storage, where: Layout, table: CuratedTable, state: dict, hours: int) -> list[str]:
    """Delete what still holds removed posts once the compliance window has passed: the older raw
    fetches and the rejected fetches of affected days and the table's superseded files (Delta's vacuum works table-wide, so
    the history of the whole table is shortened to the window at that moment)."""
    pending = [day for day, entry in state["days"].items() if entry.get("purged") is False]
    if not pending:
        return []
    hours = max(hours, config.storage().min_file_age_hours)
    cutoff = datetime.now(UTC) - timedelta(hours=hours)
    due = [day for day in pending if datetime.fromisoformat(state["days"][day]["applied_at"]) <= cutoff]
    if not due:
        return []
    deleted = table.vacuum(hours, dry_run=False)
    raw = Layout.raw_days(list(store.list(where.raw + "/")))
    old = [item["Key"] for day in due for fetch_id, item in raw.get(date.fromisoformat(day), RawDay()).fetches.items()
           if fetch_id != raw[date.fromisoformat(day)].current]
    old += [key for day, _made, key in rejected.stored(store, where) if day.isoformat() in due]
    store.delete_many(old)
    for day in due:
        state["days"][day]["purged"] = True
    store.put_json(where.compliance_state_key(), state)
    return deleted + old


def refuse_restore_before_compliance(store: Storage, where: Layout, day: date, version_time: datetime) -> None:
    """A version older than a compliance run of its day would bring removed posts back."""
    entry = load_state(store, where)["days"].get(day.isoformat(), {})
    applied = entry.get("applied_at")
    if applied and datetime.fromisoformat(applied) > version_time:
        raise StorageError(f"{day}: that version predates the compliance run of {applied[:19]}Z that removed posts of "
                           "this day; restoring it would publish them again (restore a later version)")
