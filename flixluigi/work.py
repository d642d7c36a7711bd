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
from flixluigi.store.s3 import Storage, Upload
from flixluigi.store.state import REASON_KEY, Build, Snapshot, curated_record, layout, point, pointer_of, raw_day, snapshot
from flixluigi.xapi.billing import budget_problem, cost
from flixluigi.xapi.client import Window, XClient, day_window, reconcile, search_path, servable

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
    pages = math.ceil(max(expected, 1) / config.page_size())
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


def stored_counts(store: Storage, day: date) -> dict[str, int]:
    """The counts endpoint's posts per day of the day's month, as stored ({} if none are, or of another query)."""
    key = layout().counts_key(day)
    if not store.exists(key):
        return {}
    stored = store.get_json(key)
    return stored["days"] if counts_current(stored) else {}


def expected_posts(store: Storage, day: date) -> int | None:
    """What the counts endpoint expects for the day, from the month's stored counts (None if unknown)."""
    return stored_counts(store, day).get(day.isoformat())


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
                                      max_results=config.page_size(), fields=fields, max_pages=max_pages):
                raw.write(orjson.dumps({**page.body, "__flixluigi": page.request}) + b"\n")
                sent.append(page.request)
                report.progress(f"{client.stats.pages} pages, {client.stats.tweets} tweets fetched"
                                + (f" of ~{expected} expected" if expected else ""),
                                min(99, 100 * client.stats.tweets // expected) if expected else None)
            # Inside the upload's `with`: a day refused here publishes nothing.
            warning = _reconcile(client.stats.tweets, day, expected, report)
            warnings = [warning] if warning else []
            if client.stats.tweets == 0:
                warnings.append(_empty_day(day, report))
    except (MalformedResponse, FetchDeadline) as exc:
        _keep_rejected(store, day, fetch_id, client, exc, sent)
        raise
    stats = client.stats
    before = [store.get_json(k) for k in refused]  # billed too: the day's cost counts them
    if stats.rate_limit_wait_seconds > cfg.long_wait_warning:
        warnings.append(report.warn(f"{day}: waited {stats.rate_limit_wait_seconds:.0f}s for rate limits "
                                    f"({stats.rate_limit_waits} waits); other jobs may share the app's budget"))
    rejected_cost = round(sum(r.get("cost", 0) for r in before), 4)
    pointer = _pointer(day, fetch_id, key, sink, client, expected, started, warnings, pages=stats.pages, tweets=stats.tweets,
                       posts_read=stats.posts_read, requests=dict(stats.requests), extra_cost=rejected_cost,
                       rejected_fetches=[r.get("fetch") for r in before], rejected_cost=rejected_cost)
    point(store, day, fetch_id, pointer)
    report.progress(f"done: {stats.pages} pages, {stats.tweets} tweets", 100)
    return pointer


def _billing(client: XClient) -> dict:
    """What a fetch's client read and sent, and what that costs."""
    cfg, stats = config.xapi(), client.stats
    count_requests = sum(n for path, n in stats.requests.items() if "/counts/" in path)
    return {"posts_read": stats.posts_read, "requests": dict(stats.requests),
            "cost": round(cost(stats.posts_read, count_requests, cfg.price_per_post, cfg.price_per_count_request), 4)}


def _keep_rejected(store: Storage, day: date, fetch_id: str, client: XClient, exc: Exception, sent: list[dict]) -> None:
    """A refused fetch kept for inspection outside the raw prefix (`store.rejected`), with what it cost."""
    rejected.keep(store, layout(), day, fetch_id, {
        "date": day.isoformat(), "fetch": fetch_id, "error": first_line(exc), "rejected_at": datetime.now(UTC).isoformat(),
        **_billing(client), "api_version": client.api_version, "pages": sent, "rejected_page": getattr(exc, "page", None)})


def _pointer(day: date, fetch_id: str, key: str, sink: Upload, client: XClient, expected: int | None, started: float,
             warnings: list[str], *, pages: int, tweets: int, posts_read: int, requests: dict[str, int],
             extra_cost: float = 0.0, **details: object) -> dict:
    """What makes a stored fetch the day's current one, and what it cost (with `extra_cost`: the
    day's rejected fetches since its last good one, billed too)."""
    cfg, stats = config.xapi(), client.stats
    count_requests = sum(n for path, n in requests.items() if "/counts/" in path)
    return {
        "date": day.isoformat(), "fetch": fetch_id, "object": key, "etag": sink.etag, "size": sink.size,
        "api_version": client.api_version,
        "query": cfg.query, "endpoint": cfg.endpoint, "pages": pages, "tweets": tweets,
        "expected_tweets": expected, "posts_read": posts_read, "requests": requests,
        "cost": round(cost(posts_read, count_requests, cfg.price_per_post, cfg.price_per_count_request) + extra_cost, 4),
        "partial_errors": stats.partial_errors, "retries": stats.retries, "throttled": stats.throttled,
        "rate_limit_waits": stats.rate_limit_waits, "rate_limit_wait_seconds": round(stats.rate_limit_wait_seconds, 3),
        "duration_seconds": round(time.monotonic() - started, 3), "client_version": __version__,
        "produced_at": datetime.now(UTC).isoformat(), "warnings": warnings, **details,
    }


def chain_days(store: Storage, day: date, span: tuple[date, date]) -> list[date]:
    """The days one request chain fetches for `day`: the day and its consecutive neighbours of the
    month within `span` (the range the run asked for: a run of one day never pays for another's
    posts), later ones first, then earlier, whose stored counts are above 0 and below a full page and
    that have no raw fetch stored (a stored day is never fetched again: it would be billed again),
    while the chain's expected posts stay within [xapi] chain_posts. Both ways, so whichever day of a
    run goes first fetches the run's days. Alone when the counts are unknown, the day fills a page,
    or chains are off.

    The trade-off: every request chain costs at least one request, so days of 50 posts cost 1 request
    each alone, and 1 per 10 days in a chain; the 1.1x-of-ideal target needs chains of ten full pages
    or more (~100 small days a chain), and a chain never leaves its month (its counts are the month's)."""
    cfg, size = config.xapi(), config.page_size()
    counts = stored_counts(store, day)
    total = counts.get(day.isoformat(), 0)
    if cfg.chain_posts <= 0 or not 0 < total < size:
        return [day]
    month = month_of(day)
    state = Snapshot.read(store, layout(), curated=False, span=(month[0], month[-1]))
    chain = [day]
    first, last = span
    for side in ([other for other in month if day < other <= last], [other for other in reversed(month) if first <= other < day]):
        for other in side:
            posts = counts.get(other.isoformat(), 0)
            if (not 0 < posts < size or total + posts > cfg.chain_posts or state.raw_complete(other)
                    or servable(other, cfg.endpoint)):
                break
            chain.append(other)
            total += posts
    return sorted(chain)


def fetch_days(store: Storage, day: date, span: tuple[date, date], report: Reporter) -> dict[date, dict]:
    """The day's fetch: with its missing low-volume neighbours within `span` as one request chain when
    the month's stored counts allow (`chain_days`), else alone. Returns the pointer of every day it wrote."""
    days = chain_days(store, day, span)
    return fetch_chain(store, days, report) if len(days) > 1 else {day: fetch_day(store, day, report)}


def fetch_chain(store: Storage, days: list[date], report: Reporter) -> dict[date, dict]:
    """Consecutive days as one request chain over their whole window, each written as its own fetch
    and pointer. A page is kept verbatim in the fetch of every day it holds posts of, its
    `__flixluigi` naming the chain and the posts that are the day's. Pages come newest first: once a
    post older than a day has arrived, that day is whole. If the chain breaks, the days it covered
    whole are written and the error is raised for the first day; the rest stay missing and fetch
    as their own chain when their task runs. Returns each day's pointer (what the run's summary counts)."""
    cfg, where, codec = config.xapi(), layout(), config.storage().raw_codec
    first, last = days[0], days[-1]
    window = Window(day_window(first, cfg.endpoint).start, day_window(last, cfg.endpoint).end)
    counts = stored_counts(store, first)
    expected = {day: counts.get(day.isoformat()) for day in days}
    max_pages, deadline = page_bounds(sum(n or 0 for n in expected.values()))
    client = make_client(on_status=report.progress, deadline=deadline)
    _check_budget(client, first, sum(n or 0 for n in expected.values()))
    started = time.monotonic()
    fields = {"tweet.fields": cfg.tweet_fields, "user.fields": cfg.user_fields, "expansions": cfg.expansions}
    chain = {"first": first.isoformat(), "last": last.isoformat(), "days": len(days)}
    lines: dict[date, list[bytes]] = {day: [] for day in days}
    posts: dict[date, set[str]] = {day: set() for day in days}
    whole: set[date] = set()

    def write(day: date) -> dict:
        fetch_id = new_fetch_id()
        key = where.fetch_key(day, fetch_id, codec)
        with store.upload(key) as sink, compressed(sink, codec) as raw:
            for line in lines[day]:
                raw.write(line)
            warning = _reconcile(len(posts[day]), day, expected[day], report)
            warnings = [warning] if warning else []
            if not posts[day]:
                warnings.append(_empty_day(day, report))
        pointer = _pointer(day, fetch_id, key, sink, client, expected[day], started, warnings, pages=len(lines[day]),
                           tweets=len(posts[day]), posts_read=len(posts[day]),
                           requests=dict(client.stats.requests) if day == first else {}, chain=chain)
        point(store, day, fetch_id, pointer)
        return pointer

    def publish(days_whole: list[date]) -> tuple[dict[date, dict], dict[date, Exception]]:
        """Each whole day written (its pointer); a day refused (a count mismatch, an empty day) fails alone."""
        written, refused = {}, {}
        for day in days_whole:
            try:
                written[day] = write(day)
            except Exception as exc:
                refused[day] = exc
        return written, refused

    try:
        for page in client.search(cfg.query, window, endpoint=cfg.endpoint, max_results=config.page_size(), fields=fields,
                                  max_pages=max_pages):
            by_day: dict[date, list[str]] = {}
            for post in page.body.get("data", ()):
                by_day.setdefault(date.fromisoformat(post["created_at"][:10]), []).append(post["id"])
            if whole & by_day.keys():
                raise MalformedResponse(f"search returned posts of {min(whole & by_day.keys())} after older ones: the "
                                        "pages are not newest first; set [xapi] chain_posts = 0 to fetch each day alone")
            for day, ids in by_day.items():
                posts[day].update(ids)
                lines[day].append(orjson.dumps({**page.body, "__flixluigi": {**page.request, "chain": {**chain, "posts": ids}}})
                                  + b"\n")
            if by_day:
                whole = {day for day in days if day > min(by_day) or day in whole}
            report.progress(f"{client.stats.pages} pages, {client.stats.tweets} tweets of {len(days)} days fetched")
    except Exception as exc:
        if isinstance(exc, (MalformedResponse, FetchDeadline)):
            _keep_rejected(store, first, new_fetch_id(), client, exc, [])
        publish(sorted(whole))
        log.warning("chain %s..%s broke after %d pages (%s); %d whole day(s) written, the rest fail and fetch on their own",
                    first, last, client.stats.pages, type(exc).__name__, len(whole))
        raise
    written, refused = publish(days)
    if first in refused:
        raise refused[first]
    report.progress(f"done: {client.stats.pages} pages, {client.stats.tweets} tweets of {len(days)} days", 100)
    return written


def _empty_day(day: date, report: Reporter) -> str:
    cfg = config.xapi()
    if cfg.empty_day == "fail":
        raise XApiError(f"{day}: the API returned no tweet for {cfg.query!r}; check [xapi] query and the API access, "
                        "or set [xapi] empty_day = warn if the day is really empty")
    return report.warn(f"{day}: no tweet for {cfg.query!r}; published an empty day ([xapi] empty_day = warn)")


def _reconcile(fetched: int, day: date, expected: int | None, report: Reporter) -> str | None:
    """Compare the fetch with the month's stored counts: a warning, or a refusal with reconcile = fail."""
    cfg = config.xapi()
    if cfg.reconcile == "off":
        return None
    if expected is None:
        return report.warn(f"{day}: no stored counts of the month, day not reconciled")
    mismatch = reconcile(expected, fetched, cfg.count_tolerance)
    if mismatch and cfg.reconcile == "fail":
        raise XApiError(f"{day}: {mismatch} (or set [xapi] reconcile = warn)")
    return report.warn(mismatch) if mismatch else None


def bounded_memory() -> None:
    """Arrow allocates from malloc, which returns what a batch freed; mimalloc, its default, keeps
    freed pages for reuse and held ~40 MB more at the peak of a 1,000,000-post day
    (benchmarks/memory.py), for ~4% of curation's time. Process-wide: a task process curates."""
    pa.set_memory_pool(pa.system_memory_pool())


REASONS = ("fetch", "rebuild", "reprocess", "compliance", "restore")  # why a version of a day exists (REASON_KEY)


def curate_day(store: Storage, table: CuratedTable, day: date, pseudonymize: Pseudonymizer, report: Reporter,
               force: bool = False, reason: str | None = None, **details: object) -> dict:
    """One row per distinct tweet of the day's current raw fetch, pseudonymised, committed as the
    day's partition; then the build's record. Returns the record.

    `reason` says why the version exists, in its commit's metadata and record (`status` and
    `history` show it): by default `fetch` for a day's first build, `rebuild` for a stale day's;
    `details` go into the record (what compliance removed).

    A writer that loses the commit to another re-checks: if the day now holds this build, it is
    done without writing (unless `force`, as Reprocess asks)."""
    where = layout()
    if reason is None:
        reason = "rebuild" if Snapshot.read_day(store, where, day).record(day) else "fetch"
    bounded_memory()
    started = time.monotonic()
    curators: list[Curator] = []
    builds: list[Build] = []

    def gated(key: str, build: Build, chained: bool) -> Iterator[pa.RecordBatch]:
        curator = Curator(day, pseudonymize, build_id=build.id, sharing=_sharing_options(), query=config.xapi().query,
                          chained=chained)
        curators.append(curator)
        with store.errors_explained(), open_raw(store, key) as raw:  # every identity of the day, first
            curator.learn(raw)
        with store.errors_explained(), open_raw(store, key) as raw:  # a download cut short is transient
            for batch in curator.batches(raw):
                check_batch(batch, curator.stats)
                report.progress(f"{curator.stats.pages} raw pages curated, {curator.stats.rows} rows")
                yield batch

    def done() -> bool:
        return not force and Snapshot.read_day(store, where, day).curated_complete(day, pseudonymize.key_id, sharing())

    def commit() -> int:
        # Read on every try: a writer that lost to a restore or a refetch builds from the fetch now current.
        stored = raw_day(store, where, day)
        if not stored.complete:
            raise NoRawDay(f"{day}: no raw fetch of the day is stored; run RawTweets --date {day} "
                           f"(or Reprocess --start {day} --refetch)")
        builds.append(Build(stored.current, pseudonymize.key_id, SCHEMA_VERSION, sharing()))
        chained = "chain" in (pointer_of(store, stored) or {})
        return table.write_day(day, SCHEMA, gated(stored.fetches[stored.current]["Key"], builds[-1], chained),
                               {**builds[-1].as_metadata(), "flixluigi.client_version": __version__, REASON_KEY: reason})

    from flixluigi.store.lake import retrying_conflicts

    version = retrying_conflicts(commit, done)
    build, stats = builds[-1], curators[-1].stats
    # removed_by_rule: posts of the raw fetch that a rule keeps out (older versions of an edited post).
    record = curated_record(day, build.as_metadata(), version, stats.rows, time.monotonic() - started, raw_pages=stats.pages,
                            duplicates_dropped=stats.duplicates, partial_errors=stats.partial_errors,
                            removed_by_rule=stats.superseded, reason=reason, **details)
    if version is not None:
        store.put_json(where.record_key(day, build.id), record)
    report.progress(f"done: {stats.rows} rows", 100)
    return record


def backfill_days(state: Snapshot, days: list[date], what: str) -> list[date]:
    """The days a backfill runs: those the endpoint can serve or that have a stored raw day (the
    rest are skipped in one line)."""
    endpoint = config.xapi().endpoint
    wanted, skipped = [], []
    for day in days:
        (skipped if not state.raw_complete(day) and servable(day, endpoint) else wanted).append(day)
    if skipped:
        log.warning("%s: skipping %d day(s) from %s to %s: %s", what.split()[0], len(skipped), min(skipped), max(skipped),
                    servable(skipped[0], endpoint))
    return wanted


def check_backfill_budget(state: Snapshot, days: list[date], what: str) -> None:
    """Refuses, before any fetch, days whose expected posts exceed the month's budget."""
    to_fetch = [day for day in days if not state.raw_complete(day)]
    if to_fetch and config.xapi().monthly_post_budget > 0:
        cfg, client = config.xapi(), make_client()
        expected = sum(client.daily_counts(cfg.query, min(to_fetch), max(to_fetch), endpoint=cfg.endpoint).values())
        problem = budget_problem(expected, client.usage(), cfg.monthly_post_budget)
        if problem:
            raise OverBudget(f"{what}: {problem}")


def reprocess_action(state: Snapshot, day: date, refetch: bool) -> str:
    """What a Reprocess does to one day: one phrase, shared by its dry run, `flixluigi plan` and the console."""
    if refetch:
        return "re-fetch from the API, then rebuild"
    if state.raw_complete(day):
        return f"rebuild from raw fetch {state.raw[day].current}"
    return "NO RAW DAY: would fail (use --refetch)"


def reprocess_plan(days: list[date], refetch: bool) -> list[str]:
    """What a Reprocess would do to each day, one line a day (its dry run)."""
    state = snapshot(False, days)
    return [f"dry run: {day}: {reprocess_action(state, day, refetch)}" for day in days]
