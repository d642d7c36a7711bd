"""Operator views and maintenance of stored days: status, history, restore, vacuum, verify, migrate.

Everything here reads the same stored state the tasks do (raw pointers, the Delta table, day
records); nothing is kept elsewhere. Restore and vacuum are safe while jobs run: restore is an
ordinary commit of one day (it loses to a concurrent writer with a conflict, never overwrites
it), and vacuum never deletes files younger than `[storage] min_file_age_hours`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import orjson

from flixluigi import __version__, config
from flixluigi.comply import load_state, purge, refuse_restore_before_compliance
from flixluigi.curate import SCHEMA
from flixluigi.days import Reporter, curate_day, open_raw, point, pseudonymizer, sharing
from flixluigi.lake import CuratedTable
from flixluigi.layout import Layout, RawDay
from flixluigi.state import Snapshot, layout, pointer_of, raw_day, record_of
from flixluigi.storage import Storage, StorageError

if TYPE_CHECKING:
    from flixluigi.report import DayHealth


def days_between(start: date, end: date) -> list[date]:
    if end < start:
        raise ValueError(f"--end {end} is before --start {start}; give the range oldest day first")
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


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
    days = days_between(start, end)
    store, where = Storage.from_config(), layout()
    state = Snapshot.read(store, where)
    failures = Layout.failures(list(store.list_keys(where.failures_prefix())))
    try:
        key_id = pseudonymizer().key_id
    except ValueError:
        key_id = ""
    result = []
    for day in days:
        record = record_of(store, state, day)
        curated = "ok" if key_id and state.curated_complete(day, key_id, sharing()) else "stale" if record else "missing"
        failed = sorted(key for (_family, failed_day), key in failures.items() if failed_day == day)
        failure = store.get_json(failed[0]) if failed else None
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
        warnings = "; ".join((s.pointer or {}).get("warnings", ()))
        if warnings:
            line += f"  WARNING: {warnings}"
        if s.failure:
            line += f"  FAILED at {s.failure.get('failed_at', '?')[:19]}Z: {s.failure.get('error', '?')}"
        lines.append(line)
    return lines


def day_health(s: DayStatus) -> DayHealth:
    """What the report shows of a day, from its status."""
    from flixluigi.report import DayHealth

    pointer, record, failure = s.pointer or {}, s.record or {}, s.failure or {}
    state = "failed" if failure else "ok" if s.curated == "ok" else s.curated
    remedy = {"failed": failure.get("hint"), "missing": f"luigi --module flixluigi CuratedTweets --date {s.day} --local-scheduler",
              "stale": f"luigi --module flixluigi CuratedTweets --date {s.day} --local-scheduler"}.get(state)
    return DayHealth(day=s.day, state=state, fetched=pointer.get("tweets"), expected=pointer.get("expected_tweets"),
                     rows=record.get("rows"), rate_limit_waits=pointer.get("rate_limit_waits", 0),
                     retries=pointer.get("retries", 0), partial_errors=pointer.get("partial_errors", 0),
                     posts_read=pointer.get("posts_read"), cost=pointer.get("cost"), error=failure.get("error"),
                     remedy=remedy)


def report_html(start: date, end: date) -> str:
    """The HTML report of a range: curated rows of the current versions and each day's health."""
    from flixluigi import report  # plotly: only this command needs it

    rows = CuratedTable.from_config().read(start, end, columns=list(report.COLUMNS))
    if not rows.num_columns:  # no table yet
        rows = SCHEMA.empty_table().select(list(report.COLUMNS))
    return report.render(start, end, rows, [day_health(s) for s in status(start, end)])


def estimate(start: date, end: date) -> list[str]:
    """Days, expected posts and estimated cost of fetching a range, from the counts endpoint (one
    request per 31 days; no post is read), and what the month's budget has left."""
    from flixluigi.cost import estimate as cost_estimate
    from flixluigi.days import make_client

    cfg = config.xapi()
    days = [day for day in days_between(start, end) if _servable(day)]
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


def _servable(day: date) -> bool:
    from flixluigi.xapi import XApiError, day_window

    try:
        day_window(day, config.xapi().endpoint)
    except XApiError:
        return False
    return True


def history(day: date) -> list[str]:
    """Every version of a day still in the table's log: when, from which raw fetch, key id, rows."""
    table = CuratedTable.from_config()
    lines = []
    for version in table.day_versions(day):
        meta = version.metadata
        when = datetime.fromtimestamp(version.timestamp / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if version.timestamp else "?"
        rows = "?" if version.rows is None else version.rows
        restored = f"  (restore of version {meta['flixluigi.restored_from']})" if meta.get("flixluigi.restored_from") else ""
        lines.append(f"version {version.version}  {when}  raw fetch {meta.get('flixluigi.raw_fetch', '?')}  "
                     f"key {meta.get('flixluigi.key_id', '?')}  schema {meta.get('flixluigi.schema_version', '?')}  "
                     f"rows {rows}{restored}")
    return lines or [f"{day}: no version of this day in the table's log"]


def restore(day: date, version: int) -> str:
    """Make a version of one day current again as a new commit, and point the raw day back at the
    fetch it was built from, so the next run does not rebuild over it."""
    store, where, table = Storage.from_config(), layout(), CuratedTable.from_config()
    versions = {v.version: v for v in table.day_versions(day)}
    if version not in versions:
        raise ValueError(f"version {version} did not write {day}; `flixluigi history --date {day}` lists the versions")
    meta = versions[version].metadata
    if versions[version].timestamp:
        refuse_restore_before_compliance(store, where, day, datetime.fromtimestamp(versions[version].timestamp / 1000, UTC))
    fetch_id = meta.get("flixluigi.raw_fetch", "")
    stored = raw_day(store, where, day)
    if fetch_id not in stored.fetches:
        raise StorageError(f"raw fetch {fetch_id} of version {version} was vacuumed; {day} cannot be restored to it")
    try:
        rows = table.day_rows(day, version)
    except StorageError as exc:
        raise StorageError(f"the files of version {version} of {day} were vacuumed ({exc}); it cannot be restored") from None
    build_id = meta.get("flixluigi.build_id", "")
    new_version = table.write_day(day, rows.schema, rows.to_batches(), {**meta, "flixluigi.restored_from": str(version),
                                                                        "flixluigi.client_version": __version__})
    pointer = {**store.get_json(max(stored.pointers)[2]), "fetch": fetch_id, "object": stored.fetches[fetch_id]["Key"],
               "restored_at": datetime.now(UTC).isoformat()}
    point(store, day, fetch_id, pointer)
    store.put_json(where.record_key(day, build_id), {
        "date": day.isoformat(), "build_id": build_id, "raw_fetch": fetch_id, "pseudonym_key_id": meta.get("flixluigi.key_id"),
        "schema_version": int(meta.get("flixluigi.schema_version", 0)), "sharing": meta.get("flixluigi.sharing"),
        "table_version": new_version, "rows": rows.num_rows, "restored_from": version, "duration_seconds": 0,
        "client_version": __version__, "produced_at": datetime.now(UTC).isoformat()})
    return f"{day}: version {version} restored as version {new_version} ({rows.num_rows} rows, raw fetch {fetch_id})"


def vacuum(apply: bool) -> list[str]:
    """Table files and raw fetches superseded more than [storage] keep_versions_days ago, never files
    younger than [storage] min_file_age_hours. A dry run unless `apply`."""
    cfg = config.storage()
    hours = max(cfg.keep_versions_days * 24, cfg.min_file_age_hours)
    store, where, table = Storage.from_config(), layout(), CuratedTable.from_config()
    files = table.vacuum(hours, dry_run=not apply, full=True)
    cutoff = datetime.now(UTC) - timedelta(hours=hours)
    doomed: list[str] = []
    for stored in Layout.raw_days(list(store.list(where.raw + "/"))).values():
        for fetch_id, item in stored.fetches.items():
            if fetch_id != stored.current and item["LastModified"] < cutoff and superseded_at(stored, fetch_id) < cutoff:
                doomed.append(item["Key"])
    if apply and doomed:
        store.delete_many(doomed)
    if apply:  # compliance purges due now win over the retention of versions
        doomed += purge(store, where, table, load_state(store, where), config.compliance().purge_after_hours)
    verb = "deleted" if apply else "would delete"
    return [f"{verb} {store.url(key)}" for key in doomed] + [f"{verb} {name}" for name in files]


def superseded_at(stored: RawDay, fetch_id: str) -> datetime:
    """When another fetch first became current after this one (a fetch never pointed at, left by a
    crash, counts as superseded when it was written)."""
    own = [stamp for stamp, pointed, _key in stored.pointers if pointed == fetch_id]
    since = min(own) if own else fetch_id.split("-")[0]
    later = [stamp for stamp, pointed, _key in stored.pointers if pointed != fetch_id and stamp > since]
    return datetime.strptime(min(later) if later else since, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)


def _raw_ids(store: Storage, key: str) -> set[str]:
    ids: set[str] = set()
    with open_raw(store, key) as raw:
        for line in raw:
            ids.update(t["id"] for t in orjson.loads(line).get("data", ()) if isinstance(t, dict) and "id" in t)
    return ids


def verify(start: date, end: date) -> list[str]:
    """One line per problem in the range; none when every day is whole and current.

    Invariant: a raw pointer names an object that exists; the table holds, for each curated day,
    exactly one build, the one its newest record names and the one the current raw fetch, key,
    schema and sharing options call for; its rows are the distinct posts of that raw fetch, less
    what a rule removed (collapsed edits, compliance removals: the record counts them); no table
    file that no version references is older than the grace period ([storage] min_file_age_hours)."""
    days = days_between(start, end)
    store, where, table = Storage.from_config(), layout(), CuratedTable.from_config()
    state = Snapshot.read(store, where)
    held = table.day_builds()
    key_id = pseudonymizer().key_id
    problems = []
    for day in days:
        stored, builds, record = state.raw.get(day), held.get(day, set()), state.record(day)
        if stored is None or not stored.pointers:
            if builds:
                problems.append(f"{day}: the curated table holds the day but no raw fetch is stored")
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
        ids = table.day_rows(day, columns=["tweet_id"]).column("tweet_id").to_pylist() if builds else []
        raw_ids = _raw_ids(store, stored.fetches[stored.current]["Key"])
        removed = details.get("removed_by_rule", 0)
        if not set(ids) <= raw_ids or len(set(ids)) != len(ids) or len(ids) + removed != len(raw_ids):
            problems.append(f"{day}: curated rows ({len(ids)}, {len(set(ids))} distinct) disagree with the raw fetch "
                            f"({len(raw_ids)} distinct posts, {removed} removed by rule)")
    grace = config.storage().min_file_age_hours
    problems += [f"table file that no version references, older than {grace}h: {name}" for name in table.orphans(grace)]
    return problems


LEGACY_RAW = re.compile(r"/date=(\d{4}-\d{2}-\d{2})/pages\.jsonl\.gz$")


def migrate(apply: bool) -> list[str]:
    """Convert a bucket written by flixluigi 0.1 (one raw object and manifest per day, curated
    Parquet files): each raw day becomes a fetch with its pointer, each curated day is rebuilt
    into the table from it, and the old curated files and manifests are removed. Idempotent."""
    store, where, table = Storage.from_config(), layout(), CuratedTable.from_config()
    key = pseudonymizer()
    lines = []
    legacy = [item for item in store.list(where.raw + "/") if LEGACY_RAW.search(item["Key"])]
    for item in legacy:
        day = date.fromisoformat(LEGACY_RAW.search(item["Key"]).group(1))
        manifest_key = f"{where.raw}/_manifests/date={day.isoformat()}.json"
        manifest = store.get_json(manifest_key) if store.exists(manifest_key) else {}
        fetch_id = f"{item['LastModified'].astimezone(UTC):%Y%m%dT%H%M%S%f}Z-00000000"
        lines.append(f"{day}: raw {item['Key']} -> fetch {fetch_id}, curated day rebuilt")
        if not apply:
            continue
        target = where.fetch_key(day, fetch_id, "gz")
        store.copy(item["Key"], target)
        point(store, day, fetch_id, {**manifest, "date": day.isoformat(), "fetch": fetch_id, "object": target,
                                     "migrated_from": item["Key"], "produced_at": item["LastModified"].isoformat()})
        curate_day(store, table, day, key, Reporter())
        store.delete_many([item["Key"], manifest_key])
    old_curated = [k for k in store.list_keys(where.curated + "/") if k.endswith("/tweets.parquet") or "/_manifests/" in k]
    old_curated += [k for k in store.list_keys(where.raw + "/_manifests/")]
    if old_curated:
        lines.append(f"remove {len(old_curated)} objects of the old layout (curated Parquet files and manifests)")
        if apply:
            store.delete_many(old_curated)
    return lines or ["nothing to migrate: no object of the old layout"]


