"""Producing one raw or curated day in S3: the work behind RawTweets, CuratedTweets and Reprocess.

Each function writes the day's data object whole (uploaded on success only), then its
`_manifest.json`, and returns the manifest. Progress and warnings go to a `Reporter`, which the
Luigi tasks connect to the scheduler; nothing here imports a task.
"""

from __future__ import annotations

import gzip
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import orjson

from flixluigi import __version__, config
from flixluigi.curate import SCHEMA_VERSION, Curator, write_parquet
from flixluigi.pseudonym import Pseudonymizer, load_key
from flixluigi.storage import Storage
from flixluigi.xapi import Window, XApiError, XClient, day_window, reconcile, search_path

log = logging.getLogger("luigi-interface")


@dataclass
class Reporter:
    """Where a day's progress and warnings go (the Luigi task, or nowhere)."""

    progress: Callable[..., None] = lambda message, percent=None: None
    warn: Callable[[str], str] = lambda message: message


def make_client(on_status: Callable[[str], None] = lambda message: None) -> XClient:
    cfg = config.xapi()
    return XClient(cfg.base_url, os.environ.get(cfg.token_env, ""), timeout=cfg.timeout, max_tries=cfg.max_tries,
                   max_rate_limit_wait=cfg.max_rate_limit_wait, backoff_factor=cfg.backoff_factor, on_status=on_status,
                   min_interval={search_path("all"): cfg.min_interval_all, search_path("recent"): cfg.min_interval_recent})


def pseudonymizer() -> Pseudonymizer:
    """From the configured key; raises before any work when the key is missing or unusable."""
    cfg = config.pseudonym()
    return Pseudonymizer(load_key(cfg.key_env, cfg.key_file))


def _publish_manifest(store: Storage, prefix: str, day: date, manifest: dict) -> dict:
    """The last write of a day: it makes the day complete and clears an earlier failure."""
    store.put_json(store.manifest_key(prefix, day), manifest)
    store.delete(store.failure_key(prefix, day))
    return manifest


def fetch_day(store: Storage, day: date, report: Reporter) -> dict:
    """Every API page of the day, verbatim plus request metadata, one per line, gzip-compressed."""
    cfg = config.xapi()
    window = day_window(day, cfg.endpoint)
    store.check()
    client = make_client(on_status=report.progress)
    fields = {"tweet.fields": cfg.tweet_fields, "user.fields": cfg.user_fields, "expansions": cfg.expansions}
    started = time.monotonic()
    with store.errors_explained(), store.target(store.raw_key(day)).open("w") as sink, \
            gzip.GzipFile(fileobj=sink, mode="wb", mtime=0) as raw:
        for page in client.search(cfg.query, window, endpoint=cfg.endpoint, max_results=cfg.max_results, fields=fields):
            raw.write(orjson.dumps({**page.body, "__flixluigi": page.request}) + b"\n")
            report.progress(f"{client.stats.pages} pages, {client.stats.tweets} tweets fetched")
        # Inside the upload's `with`: a day refused here publishes nothing.
        expected, warning = _reconcile(client, day, window, report)
        warnings = [warning] if warning else []
        if client.stats.tweets == 0:
            warnings.append(_empty_day(day, report))
    stats = client.stats
    if stats.rate_limit_wait_seconds > cfg.long_wait_warning:
        warnings.append(report.warn(f"{day}: waited {stats.rate_limit_wait_seconds:.0f}s for rate limits "
                                    f"({stats.rate_limit_waits} waits); other jobs may share the app's budget"))
    manifest = _publish_manifest(store, store.raw_prefix, day, {
        "date": day.isoformat(), "query": cfg.query, "endpoint": cfg.endpoint, "object": store.raw_key(day),
        "pages": stats.pages, "tweets": stats.tweets, "expected_tweets": expected,
        "partial_errors": stats.partial_errors, "retries": stats.retries, "rate_limit_waits": stats.rate_limit_waits,
        "rate_limit_wait_seconds": round(stats.rate_limit_wait_seconds, 3),
        "duration_seconds": round(time.monotonic() - started, 3), "client_version": __version__,
        "produced_at": datetime.now(UTC).isoformat(), "warnings": warnings,
    })
    report.progress(f"done: {stats.pages} pages, {stats.tweets} tweets", 100)
    return manifest


def _empty_day(day: date, report: Reporter) -> str:
    cfg = config.xapi()
    if cfg.empty_day == "fail":
        raise XApiError(f"{day}: the API returned no tweet for {cfg.query!r}; check [xapi] query and the API access, "
                        "or set [xapi] empty_day = warn if the day is really empty")
    return report.warn(f"{day}: no tweet for {cfg.query!r}; published an empty day ([xapi] empty_day = warn)")


def _reconcile(client: XClient, day: date, window: Window, report: Reporter) -> tuple[int | None, str | None]:
    cfg = config.xapi()
    if cfg.reconcile == "off":
        return None, None
    try:
        expected = client.count(cfg.query, window, endpoint=cfg.endpoint)
    except XApiError as exc:
        return None, report.warn(f"counts endpoint unavailable, day not reconciled: {exc}")
    mismatch = reconcile(expected, client.stats.tweets, cfg.count_tolerance)
    if mismatch and cfg.reconcile == "fail":
        raise XApiError(f"{day}: {mismatch} (or set [xapi] reconcile = warn)")
    return expected, report.warn(mismatch) if mismatch else None


def curate_day(store: Storage, day: date, pseudonymize: Pseudonymizer, report: Reporter) -> dict:
    """One row per distinct tweet of the stored raw day, pseudonymised, as Parquet."""
    store.check()
    curator = Curator(day, pseudonymize)
    with store.errors_explained(), store.open_gzip(store.raw_key(day)) as raw, \
            store.target(store.curated_key(day)).open("w") as sink:
        stats = write_parquet(raw, sink, curator,
                              lambda so_far: report.progress(f"{so_far.pages} raw pages curated, {so_far.rows} rows"))
    manifest = _publish_manifest(store, store.curated_prefix, day, {
        "date": day.isoformat(), "object": store.curated_key(day), "rows": stats.rows, "raw_pages": stats.pages,
        "duplicates_dropped": stats.duplicates, "partial_errors": stats.partial_errors,
        "pseudonym_key_id": pseudonymize.key_id, "schema_version": SCHEMA_VERSION, "client_version": __version__,
        "produced_at": datetime.now(UTC).isoformat(),
    })
    report.progress(f"done: {stats.rows} rows", 100)
    return manifest


def reprocess_day(store: Storage, day: date, *, refetch: bool, stamp: str, pseudonymize: Pseudonymizer,
                  report: Reporter) -> list[str]:
    """Rebuild a stored day, keeping the old objects under the archive prefix.

    The old objects are copied to the archive first and stay at their keys until the new ones
    replace them whole; if anything fails, the archived copies are put back, so the day that
    was there before is what readers see. Returns the archived keys.
    """
    if not refetch and not store.exists(store.manifest_key(store.raw_prefix, day)):
        raise ValueError(f"{day}: no raw day stored to rebuild from; reprocess with --refetch or run RawTweets first")
    prefixes = [store.curated_prefix, *([store.raw_prefix] if refetch else [])]
    archived = store.archive_day(prefixes, day, stamp)
    try:
        if refetch:
            fetch_day(store, day, report)
        curate_day(store, day, pseudonymize, report)
    except Exception:
        store.restore(archived)
        log.warning("reprocessing %s failed; the previous objects were put back", day)
        raise
    return [archive for _, archive in archived]
