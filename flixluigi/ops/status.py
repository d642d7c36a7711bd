"""Operator views of stored days: status, history, verify and the cost estimate.

Everything here reads the same stored state the tasks do (raw pointers, the Delta table, day
records); nothing is kept elsewhere, and nothing here changes it (`ops.actions` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import orjson

from flixluigi import config
from flixluigi.dates import day_range
from flixluigi.errors import HmacKeyError
from flixluigi.store.lake import CuratedTable
from flixluigi.store.layout import Layout, current_failure
from flixluigi.store.rawio import open_raw
from flixluigi.store.s3 import Storage
from flixluigi.store.state import REASON_KEY, Snapshot, day_versions, layout, pointer_of, record_of
from flixluigi.work import make_client, pseudonymizer, sharing
from flixluigi.xapi.billing import estimate as cost_estimate
from flixluigi.xapi.client import servable


@dataclass
class DayStatus:
    day: date
    raw: str
    curated: str
    record: dict | None
    pointer: dict | None
    failure: dict | None


def status(start: date, end: date) -> list[DayStatus]:
    """Each day: raw ok/missing, curated ok/stale/missing, its last failure; from three listings plus
    the pointer and record of each day shown."""
    days = day_range(start, end)
    store, where = Storage.from_config(), layout()
    state = Snapshot.read(store, where, span=(start, end))
    failures = Layout.failures(list(store.list_keys(where.failures_prefix())))
    try:
        key_id = pseudonymizer().key_id
    except HmacKeyError as exc:  # without it every curated day would look stale
        raise HmacKeyError(f"status tells current curated days from stale ones by the HMAC key's id: {exc}") from None
    result = []
    for day in days:
        record = record_of(store, state, day)
        curated = "ok" if state.curated_complete(day, key_id, sharing()) else "stale" if record else "missing"
        markers = [store.get_json(key) for (_family, failed_day), key in sorted(failures.items()) if failed_day == day]
        failure = max((m for m in markers if current_failure(m, state.raw.get(day), state.records.get(day, []))),
                      key=lambda m: m.get("failed_at", ""), default=None)
        result.append(DayStatus(day, "ok" if state.raw_complete(day) else "missing", curated, record,
                                pointer_of(store, state.raw.get(day)), failure))
    return result


def status_lines(start: date, end: date) -> list[str]:
    lines = []
    for s in status(start, end):
        raw = f"ok {s.pointer['tweets']} tweets" if s.raw == "ok" and s.pointer else s.raw
        curated = f"{s.curated} {s.record['rows']} rows" if s.record else s.curated
        line = f"{s.day}  raw: {raw:<16}  curated: {curated:<16}"
        if s.pointer and s.pointer.get("posts_read") is not None:
            line += f"  read {s.pointer['posts_read']} posts ~${s.pointer.get('cost', 0):.2f}"
        if s.record:
            line += f"  built {s.record['produced_at'][:19]}Z in {s.record.get('duration_seconds', '?')}s"
            line += f" ({s.record['reason']})" if s.record.get("reason") else ""
            removed = s.record.get("compliance_removed") or {}
            if removed:  # why curated holds fewer rows than raw posts
                line += "  compliance removed " + ", ".join(f"{count} {what}" for what, count in removed.items())
        warnings = "; ".join((s.pointer or {}).get("warnings", ()))
        if warnings:
            line += f"  WARNING: {warnings}"
        if s.failure:
            line += f"  FAILED at {s.failure.get('failed_at', '?')[:19]}Z: {s.failure.get('error', '?')}"
        lines.append(line)
    return lines


def estimate(start: date, end: date) -> list[str]:
    """Days, expected posts and estimated cost of fetching a range, from the counts endpoint (one
    request per 31 days; no post is read), and what the month's budget has left."""
    cfg = config.xapi()
    days = [day for day in day_range(start, end) if not servable(day, cfg.endpoint)]
    if not days:
        raise ValueError(f"[xapi] endpoint = {cfg.endpoint} can serve no day from {start} to {end}")
    client = make_client()
    daily = client.daily_counts(cfg.query, days[0], days[-1], endpoint=cfg.endpoint)
    result = cost_estimate({day: daily.get(day, 0) for day in days}, cfg.price_per_post, cfg.price_per_count_request)
    lines = [f"{start}..{end}: {result.line()}"]
    if cfg.monthly_post_budget > 0:
        used = client.usage()
        lines.append(f"budget: {used} of {cfg.monthly_post_budget} posts read this month, "
                     f"{max(0, cfg.monthly_post_budget - used)} left")
    return lines


def history(day: date) -> list[str]:
    """Every version of a day still in the table's log: when, why (fetch, rebuild, reprocess,
    compliance, restore of version N), from which raw fetch, key id, rows."""
    lines = []
    for version in day_versions(Storage.from_config(), layout(), day):
        meta = version.metadata
        when = datetime.fromtimestamp(version.timestamp / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if version.timestamp else "?"
        rows = "?" if version.rows is None else version.rows
        restored = f" of version {meta['flixluigi.restored_from']}" if meta.get("flixluigi.restored_from") else ""
        reason = meta.get(REASON_KEY) or ("restore" if restored else "?")
        lines.append(f"version {version.version}  {when}  {reason}{restored}  raw fetch {meta.get('flixluigi.raw_fetch', '?')}  "
                     f"key {meta.get('flixluigi.key_id', '?')}  schema {meta.get('flixluigi.schema_version', '?')}  "
                     f"rows {rows}")
    return lines or [f"{day}: no version of this day in the table's log"]


def _raw_ids(store: Storage, key: str) -> set[str]:
    """The ids of the day's posts in a raw fetch (of a chained fetch's pages, those its `__flixluigi` names the day's)."""
    ids: set[str] = set()
    with open_raw(store, key) as raw:
        for line in raw:
            page = orjson.loads(line)
            chain = page.get("__flixluigi", {}).get("chain")
            ids.update(t["id"] for t in page.get("data", ()) if isinstance(t, dict) and "id" in t
                       and (chain is None or t["id"] in chain["posts"]))
    return ids


def verify(start: date, end: date) -> list[str]:
    """One line per problem in the range, a missing day included; none when every day is whole and current.

    Invariant: a raw pointer names an object that exists; the table holds, for each curated day,
    exactly one build, the one its newest record names and the one the current raw fetch, key,
    schema and sharing options call for; its rows are the distinct posts of that raw fetch, less
    what a rule removed (collapsed edits, compliance removals: the record counts them); no table
    file that no version references is older than the grace period ([storage] min_file_age_hours)."""
    days = day_range(start, end)
    store, where, lake = Storage.from_config(), layout(), CuratedTable.from_config()
    state = Snapshot.read(store, where, span=(start, end))
    table = lake.open()  # once: every check below reads this one state of the table
    held, files = lake.day_builds(table), lake.day_files(table, start, end)
    key_id = pseudonymizer().key_id
    problems = []
    for day in days:
        stored, builds, record = state.raw.get(day), held.get(day, set()), state.record(day)
        if stored is None or not stored.pointers:
            problems.append(f"{day}: the curated table holds the day but no raw fetch is stored" if builds else
                            f"{day}: missing: no raw fetch and no curated day stored; run luigi --module flixluigi "
                            f"CuratedTweets --date {day}")
            continue
        if not stored.complete:
            problems.append(f"{day}: raw pointer names fetch {stored.current}, whose object is missing; "
                            f"run Reprocess --start {day} --refetch")
            continue
        expected = state.expected(day, key_id, sharing())
        if record is None or not state.curated_complete(day, key_id, sharing()):
            problems.append(f"{day}: curated day is not built from the current build {expected.id if expected else '?'} "
                            f"(raw fetch {stored.current}); run CuratedTweets --date {day}")
            continue
        details = store.get_json(record[2])
        if builds != ({record[1]} if details.get("rows") else set()):
            problems.append(f"{day}: the table holds build(s) {sorted(builds) or 'none'} but the newest record names "
                            f"{record[1]}; run Reprocess --start {day}")
            continue
        ids = lake.rows_of(files[day], ["tweet_id"]).column("tweet_id").to_pylist() if builds else []
        raw_ids = _raw_ids(store, stored.fetches[stored.current]["Key"])
        removed = details.get("removed_by_rule", 0)
        if not set(ids) <= raw_ids or len(set(ids)) != len(ids) or len(ids) + removed != len(raw_ids):
            problems.append(f"{day}: curated rows ({len(ids)}, {len(set(ids))} distinct) disagree with the raw fetch "
                            f"({len(raw_ids)} distinct posts, {removed} removed by rule)")
    grace = config.storage().min_file_age_hours
    problems += [f"table file that no version references, older than {grace}h: {name}" for name in lake.orphans(grace, table)]
    return problems


