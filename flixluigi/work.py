"""Producing days: the work behind RawTweets, CuratedTweets, Rebuild, Backfill and Reprocess.

A fetch is written once to its own key and then pointed at; a curated day is one commit of the
table that replaces its partition, then its record. Progress and warnings go to a `Reporter`,
which the Luigi tasks connect to the scheduler; nothing here imports a task.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, TypeVar

import backoff
import orjson
import pyarrow as pa

from flixluigi import config
from flixluigi._version import __version__
from flixluigi.curation.curator import Curator
from flixluigi.curation.gate import check_batch
from flixluigi.curation.privacy import SharingOptions
from flixluigi.curation.pseudonym import Pseudonymizer, load_key
from flixluigi.curation.schema import SCHEMA, SCHEMA_VERSION
from flixluigi.dates import month_of
from flixluigi.errors import (
    FetchDeadline,
    MalformedResponse,
    NoRawDay,
    OverBudget,
    RejectedTooOften,
    XApiError,
    first_line,
    is_transient,
)
from flixluigi.store import rejected
from flixluigi.store.layout import new_fetch_id
from flixluigi.store.rawio import compressed, open_raw
from flixluigi.store.s3 import Storage
from flixluigi.store.state import Build, Snapshot, curated_record, layout, point, raw_day, snapshot
from flixluigi.xapi.billing import budget_problem, cost
from flixluigi.xapi.client import XClient, day_window, reconcile, search_path, servable

if TYPE_CHECKING:  # deltalake is imported where a day is committed, not by every `luigi` invocation
    from flixluigi.store.lake import CuratedTable

log = logging.getLogger("luigi-interface")
T = TypeVar("T")


@dataclass
class Reporter:
    """Where a day's progress and warnings go (the Luigi task, or nowhere)."""

    progress: Callable[..., None] = lambda message, percent=None: None
    warn: Callable[[str], str] = lambda message: message


def make_client(on_status: Callable[[str], None] = lambda message: None, deadline: float | None = None) -> XClient:
    cfg = config.xapi()
    return XClient(cfg.base_url, os.environ.get(cfg.token_env, ""), timeout=cfg.timeout, max_tries=cfg.max_tries,
                   retry_budget=cfg.retry_budget, deadline=deadline, idle_pages=cfg.idle_pages,
                   max_rate_limit_wait=cfg.max_rate_limit_wait, backoff_factor=cfg.backoff_factor, on_status=on_status,
                   min_interval={search_path("all"): cfg.min_interval_all, search_path("recent"): cfg.min_interval_recent})


def page_bounds(expected: int | None) -> tuple[int | None, float | None]:
    """The most pages and seconds (besides announced waits) a fetch of `expected` posts may take;
    (None, None) when nothing is expected to go by (no stored counts)."""
    if expected is None:
        return None, None
    cfg = config.xapi()
    pages = math.ceil(max(expected, 1) / cfg.max_results)
    return math.ceil(cfg.page_slack * pages) + 10, cfg.deadline_base + cfg.deadline_per_page * pages


def pseudonymizer() -> Pseudonymizer:
    """From the configured key; raises before any work when the key is missing or unusable."""
    cfg = config.pseudonym()
    return Pseudonymizer(load_key(cfg.key_env, cfg.key_file))


def _sharing_options() -> SharingOptions:
    cfg = config.sharing()
    return SharingOptions(cfg.tweet_ids, cfg.text, cfg.author_location)


def sharing() -> str:
    """The fingerprint of the sharing options a curated day is built with (part of its build)."""
    return _sharing_options().fingerprint


def with_retries(action: Callable[[], T], what: str, report: Reporter) -> T:
    """Retry a whole day's work after a transient failure ([days] tries, retry_delay, read now);
    permanent failures and the last transient one are raised at once. The wait is announced, and
    is what is waited (no jitter)."""
    cfg = config.days()

    def announce(details: dict) -> None:
        message = f"{what}: {details['exception']}; retrying in {cfg.retry_delay:.0f}s (try {details['tries'] + 1} of {cfg.tries})"
        log.warning(message)
        report.progress(message)

    retrying = backoff.on_exception(backoff.constant, Exception, max_tries=cfg.tries, giveup=lambda exc: not is_transient(exc),
                                    jitter=None, on_backoff=announce, logger=None, interval=cfg.retry_delay)
    return retrying(action)()


def month_days(month: date) -> list[date]:
    """The days of the month the configured endpoint can fetch now (over, and inside its window)."""
    endpoint = config.xapi().endpoint
    return [day for day in month_of(month) if not servable(day, endpoint)]


def counts_current(stored: dict) -> bool:
    """Stored counts are of the configured query and endpoint."""
    cfg = config.xapi()
    return (stored.get("query"), stored.get("endpoint")) == (cfg.query, cfg.endpoint)


def fetch_counts(store: Storage, month: date, report: Reporter) -> dict:
    """The counts endpoint's posts per day for the month's fetchable days, stored: one counts request
    per month reconciles and budgets all its days (instead of one a day)."""
    cfg, days = config.xapi(), month_days(month)
    counts = make_client(on_status=report.progress).daily_counts(cfg.query, days[0], days[-1], endpoint=cfg.endpoint) \
        if days else {}
    stored = {"month": f"{month:%Y-%m}", "query": cfg.query, "endpoint": cfg.endpoint,
              "days": {day.isoformat(): counts.get(day, 0) for day in days}, "fetched_at": datetime.now(UTC).isoformat()}
    store.put_json(layout().counts_key(month), stored)
    return stored


def expected_posts(store: Storage, day: date) -> int | None:
    """What the counts endpoint expects for the day, from the month's stored counts (None if unknown)."""
    key = layout().counts_key(day)
    if not store.exists(key):
        return None
    stored = store.get_json(key)
    return stored["days"].get(day.isoformat()) if counts_current(stored) else None


def _check_budget(client: XClient, day: date, expected: int | None) -> None:
    """Refuse a day whose expected posts would take the month past [xapi] monthly_post_budget."""
    budget = config.xapi().monthly_post_budget
    if budget <= 0:
        return
    problem = budget_problem(expected or 0, client.usage(), budget)
    if problem:
        raise OverBudget(f"{day}: {problem}")


def fetch_day(store: Storage, day: date, report: Reporter, force: bool = False) -> dict:
    """Every API page of the day, verbatim plus request metadata, one per line, as a new fetch
    object; then the pointer that makes it current. Returns the pointer.

    A fetch the client refuses (a wrong page, paging without end, past its deadline) publishes
    nothing and is kept as a rejected fetch (`store.rejected`); after `[xapi] max_rejections` in
    a row the day is not fetched again (each is billed) unless `force` (Reprocess --refetch)."""
    cfg, where = config.xapi(), layout()
    day_window(day, cfg.endpoint)
    refused = rejected.in_a_row(store, where, day)
    if len(refused) >= cfg.max_rejections and not force:
        raise RejectedTooOften(f"{day}: the last {len(refused)} fetches were rejected (last: "
                               f"{store.get_json(refused[-1]).get('error')}); not fetched again, each is billed: "
                               f"inspect {store.url(refused[-1])}, then run Reprocess --start {day} --refetch")
    fields = {"tweet.fields": cfg.tweet_fields, "user.fields": cfg.user_fields, "expansions": cfg.expansions}
    expected = expected_posts(store, day)
    max_pages, deadline = page_bounds(expected)
    client = make_client(on_status=report.progress, deadline=deadline)
    _check_budget(client, day, expected)
    started = time.monotonic()
    fetch_id = new_fetch_id()
    codec = config.storage().raw_codec
    key = where.fetch_key(day, fetch_id, codec)
    sent: list[dict] = []
    try:
        with store.upload(key) as sink, compressed(sink, codec) as raw:
            # Every page is validated before it is written; a refused one leaves nothing published.
            for page in client.search(cfg.query, day_window(day, cfg.endpoint), endpoint=cfg.endpoint,
                                      max_results=cfg.max_results, fields=fields, max_pages=max_pages):
                raw.write(orjson.dumps({**page.body, "__flixluigi": page.request}) + b"\n")
                sent.append(page.request)
                report.progress(f"{client.stats.pages} pages, {client.stats.tweets} tweets fetched")
            # Inside the upload's `with`: a day refused here publishes nothing.
            warning = _reconcile(client, day, expected, report)
            warnings = [warning] if warning else []
            if client.stats.tweets == 0:
                warnings.append(_empty_day(day, report))
    except (MalformedResponse, FetchDeadline) as exc:
        rejected.keep(store, where, day, fetch_id, {
            "date": day.isoformat(), "fetch": fetch_id, "error": first_line(exc), "rejected_at": datetime.now(UTC).isoformat(),
            **_billing(client), "api_version": client.api_version, "pages": sent, "rejected_page": getattr(exc, "page", None)})
        raise
    stats = client.stats
    before = [store.get_json(k) for k in refused]  # billed too: the day's cost counts them
    if stats.rate_limit_wait_seconds > cfg.long_wait_warning:
        warnings.append(report.warn(f"{day}: waited {stats.rate_limit_wait_seconds:.0f}s for rate limits "
                                    f"({stats.rate_limit_waits} waits); other jobs may share the app's budget"))
    pointer = {
        "date": day.isoformat(), "fetch": fetch_id, "object": key, "etag": sink.etag, "size": sink.size,
        "api_version": client.api_version,
        "query": cfg.query, "endpoint": cfg.endpoint, "pages": stats.pages, "tweets": stats.tweets,
        "expected_tweets": expected, "posts_read": stats.posts_read, "requests": dict(stats.requests),
        "cost": round(_billing(client)["cost"] + sum(r.get("cost", 0) for r in before), 4),
        "rejected_fetches": [r.get("fetch") for r in before], "rejected_cost": round(sum(r.get("cost", 0) for r in before), 4),
        "partial_errors": stats.partial_errors, "retries": stats.retries, "throttled": stats.throttled,
        "rate_limit_waits": stats.rate_limit_waits, "rate_limit_wait_seconds": round(stats.rate_limit_wait_seconds, 3),
        "duration_seconds": round(time.monotonic() - started, 3), "client_version": __version__,
        "produced_at": datetime.now(UTC).isoformat(), "warnings": warnings,
    }
    point(store, day, fetch_id, pointer)
    report.progress(f"done: {stats.pages} pages, {stats.tweets} tweets", 100)
    return pointer


def _billing(client: XClient) -> dict:
    """What a fetch's client read and sent, and what that costs."""
    cfg, stats = config.xapi(), client.stats
    count_requests = sum(n for path, n in stats.requests.items() if "/counts/" in path)
    return {"posts_read": stats.posts_read, "requests": dict(stats.requests),
            "cost": round(cost(stats.posts_read, count_requests, cfg.price_per_post, cfg.price_per_count_request), 4)}


def _empty_day(day: date, report: Reporter) -> str:
    cfg = config.xapi()
    if cfg.empty_day == "fail":
        raise XApiError(f"{day}: the API returned no tweet for {cfg.query!r}; check [xapi] query and the API access, "
                        "or set [xapi] empty_day = warn if the day is really empty")
    return report.warn(f"{day}: no tweet for {cfg.query!r}; published an empty day ([xapi] empty_day = warn)")


def _reconcile(client: XClient, day: date, expected: int | None, report: Reporter) -> str | None:
    """Compare the fetch with the month's stored counts: a warning, or a refusal with reconcile = fail."""
    cfg = config.xapi()
    if cfg.reconcile == "off":
        return None
    if expected is None:
        return report.warn(f"{day}: no stored counts of the month, day not reconciled")
    mismatch = reconcile(expected, client.stats.tweets, cfg.count_tolerance)
    if mismatch and cfg.reconcile == "fail":
        raise XApiError(f"{day}: {mismatch} (or set [xapi] reconcile = warn)")
    return report.warn(mismatch) if mismatch else None


def bounded_memory() -> None:
    """Arrow allocates from malloc, which returns what a batch freed; mimalloc, its default, keeps
    freed pages for reuse and held ~40 MB more at the peak of a 1,000,000-post day
    (benchmarks/memory.py), for ~4% of curation's time. Process-wide: a task process curates."""
    pa.set_memory_pool(pa.system_memory_pool())


def curate_day(store: Storage, table: CuratedTable, day: date, pseudonymize: Pseudonymizer, report: Reporter,
               force: bool = False) -> dict:
    """One row per distinct tweet of the day's current raw fetch, pseudonymised, committed as the
    day's partition; then the build's record. Returns the record.

    A writer that loses the commit to another re-checks: if the day now holds this build, it is
    done without writing (unless `force`, as Reprocess asks)."""
    where = layout()
    bounded_memory()
    started = time.monotonic()
    curators: list[Curator] = []
    builds: list[Build] = []

    def gated(key: str, build: Build) -> Iterator[pa.RecordBatch]:
        curator = Curator(day, pseudonymize, build_id=build.id, sharing=_sharing_options(), query=config.xapi().query)
        curators.append(curator)
        with store.errors_explained(), open_raw(store, key) as raw:  # every identity of the day, first
            curator.learn(raw)
        with store.errors_explained(), open_raw(store, key) as raw:  # a download cut short is transient
            for batch in curator.batches(raw):
                check_batch(batch, curator.stats)
                report.progress(f"{curator.stats.pages} raw pages curated, {curator.stats.rows} rows")
                yield batch

    def done() -> bool:
        return not force and Snapshot.read(store, where).curated_complete(day, pseudonymize.key_id, sharing())

    def commit() -> int:
        # Read on every try: a writer that lost to a restore or a refetch builds from the fetch now current.
        stored = raw_day(store, where, day)
        if not stored.complete:
            raise NoRawDay(f"{day}: no raw fetch of the day is stored; run RawTweets --date {day} "
                           f"(or Reprocess --start {day} --refetch)")
        builds.append(Build(stored.current, pseudonymize.key_id, SCHEMA_VERSION, sharing()))
        return table.write_day(day, SCHEMA, gated(stored.fetches[stored.current]["Key"], builds[-1]),
                               {**builds[-1].as_metadata(), "flixluigi.client_version": __version__})

    from flixluigi.store.lake import retrying_conflicts

    version = retrying_conflicts(commit, done)
    build, stats = builds[-1], curators[-1].stats
    # removed_by_rule: posts of the raw fetch that a rule keeps out (older versions of an edited post).
    record = curated_record(day, build.as_metadata(), version, stats.rows, time.monotonic() - started, raw_pages=stats.pages,
                            duplicates_dropped=stats.duplicates, partial_errors=stats.partial_errors,
                            removed_by_rule=stats.superseded)
    if version is not None:
        store.put_json(where.record_key(day, build.id), record)
    report.progress(f"done: {stats.rows} rows", 100)
    return record


def backfill_days(days: list[date], what: str) -> list[date]:
    """The days a backfill runs: those the endpoint can serve or that have a stored raw day (the
    rest are skipped in one line). Refuses, before any fetch, a range whose expected posts exceed
    the month's budget."""
    state, endpoint = snapshot(False), config.xapi().endpoint
    wanted, skipped = [], []
    for day in days:
        (skipped if not state.raw_complete(day) and servable(day, endpoint) else wanted).append(day)
    if skipped:
        log.warning("Backfill: skipping %d day(s) from %s to %s: %s", len(skipped), min(skipped), max(skipped),
                    servable(skipped[0], endpoint))
    to_fetch = [day for day in wanted if not state.raw_complete(day)]
    if to_fetch and config.xapi().monthly_post_budget > 0:
        cfg, client = config.xapi(), make_client()
        expected = sum(client.daily_counts(cfg.query, min(to_fetch), max(to_fetch), endpoint=cfg.endpoint).values())
        problem = budget_problem(expected, client.usage(), cfg.monthly_post_budget)
        if problem:
            raise OverBudget(f"{what}: {problem}")
    return wanted


def reprocess_plan(days: list[date], refetch: bool) -> list[str]:
    """What a Reprocess would do to each day, one line a day (its dry run)."""
    state = snapshot(False)
    return [f"dry run: {day}: " + ("re-fetch from the API, then rebuild" if refetch else
                                    f"rebuild from raw fetch {state.raw[day].current}" if state.raw_complete(day) else
                                    "NO RAW DAY: would fail (use --refetch)") for day in days]
