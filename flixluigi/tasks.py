"""Thin Luigi tasks: X API -> raw day -> curated day, each writing S3 targets.

The tasks only wire `xapi`, `storage`, `curate` and `pseudonym` together and report progress
to the scheduler. A day is complete when its `_manifest.json` exists (written last), and both
day tasks answer Luigi's `bulk_complete` with one S3 listing, so `RangeDaily` works on S3.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import ClassVar

import luigi
import orjson

from flixluigi import __version__, config
from flixluigi.curate import SCHEMA_VERSION, Curator, write_parquet
from flixluigi.pseudonym import Pseudonymizer, load_key
from flixluigi.storage import CURATED_FILE, MANIFEST, RAW_FILE, Storage
from flixluigi.xapi import Window, XApiError, XClient, day_window, reconcile

log = logging.getLogger("luigi-interface")
WARNING_EVENT = "flixluigi.warning"


def make_client(on_status=lambda message: None) -> XClient:
    cfg = config.xapi()
    return XClient(cfg.base_url, os.environ.get(cfg.token_env, ""), timeout=cfg.timeout, max_tries=cfg.max_tries,
                   max_rate_limit_wait=cfg.max_rate_limit_wait, backoff_factor=cfg.backoff_factor, on_status=on_status)


class ApiAvailable(luigi.Task):
    """The API answers and accepts the token; checked once per worker process before any fetch."""

    _checked: ClassVar[set[str]] = set()

    @staticmethod
    def _identity() -> str:
        cfg = config.xapi()
        token = os.environ.get(cfg.token_env, "")
        return f"{cfg.base_url}|{cfg.endpoint}|{hashlib.sha256(token.encode()).hexdigest()}"

    def complete(self) -> bool:
        return self._identity() in self._checked

    def run(self) -> None:
        cfg = config.xapi()
        make_client().check(cfg.query, endpoint=cfg.endpoint)
        self._checked.add(self._identity())


class DayTask(luigi.Task):
    """A task of one UTC day whose completeness is its manifest in S3."""

    date = luigi.DateParameter(description="UTC day, YYYY-MM-DD")
    prefix_setting = ""

    @cached_property
    def storage(self) -> Storage:
        return Storage.from_config()

    @classmethod
    def _prefix(cls, store: Storage) -> str:
        return getattr(store, cls.prefix_setting)

    def key(self, name: str) -> str:
        return self.storage.day_key(self._prefix(self.storage), self.date, name)

    def complete(self) -> bool:
        return self.storage.exists(self.key(MANIFEST))

    @classmethod
    def bulk_complete(cls, parameter_tuples: Iterable) -> list:
        """One listing of the prefix instead of one request per day (RangeDaily's fast path)."""
        # RangeDaily passes functools.partial(cls, **of_params) as `cls`.
        task_cls = getattr(cls, "func", cls)
        days = list(parameter_tuples)
        store = Storage.from_config()
        done = store.complete_days(task_cls._prefix(store))
        return [day for day in days if day in done]

    def manifest(self) -> dict:
        return self.storage.get_json(self.key(MANIFEST))

    def warn(self, message: str) -> str:
        """Log and raise a pipeline warning; notification handlers subscribe to WARNING_EVENT."""
        log.warning("%s %s: %s", self.task_family, self.date, message)
        self.trigger_event(WARNING_EVENT, self, message)
        return message

    def progress(self, message: str, percent: int | None = None) -> None:
        self.set_status_message(message)
        if percent is not None:
            self.set_progress_percentage(percent)


class RawTweets(DayTask):
    """Every API page of the day, verbatim plus request metadata, one per line in a gzip object."""

    prefix_setting = "raw_prefix"
    file_name = RAW_FILE

    def requires(self) -> luigi.Task:
        return ApiAvailable()

    def output(self) -> luigi.Target:
        return self.storage.target(self.key(self.file_name))

    def run(self) -> None:
        cfg = config.xapi()
        window = day_window(self.date, cfg.endpoint)
        self.storage.check()
        client = make_client(on_status=self.progress)
        fields = {"tweet.fields": cfg.tweet_fields, "user.fields": cfg.user_fields, "expansions": cfg.expansions}
        started = time.monotonic()
        with self.output().open("w") as sink, gzip.GzipFile(fileobj=sink, mode="wb", mtime=0) as raw:
            for page in client.search(cfg.query, window, endpoint=cfg.endpoint, max_results=cfg.max_results,
                                      fields=fields):
                raw.write(orjson.dumps({**page.body, "__flixluigi": page.request}) + b"\n")
                self.progress(f"{client.stats.pages} pages, {client.stats.tweets} tweets fetched")
            expected, warning = self._reconcile(client, window)
        stats = client.stats
        self.storage.put_json(self.key(MANIFEST), {
            "date": self.date.isoformat(), "query": cfg.query, "endpoint": cfg.endpoint,
            "object": self.key(self.file_name), "pages": stats.pages, "tweets": stats.tweets,
            "expected_tweets": expected, "partial_errors": stats.partial_errors, "retries": stats.retries,
            "rate_limit_waits": stats.rate_limit_waits, "rate_limit_wait_seconds": round(stats.rate_limit_wait_seconds, 3),
            "duration_seconds": round(time.monotonic() - started, 3), "client_version": __version__,
            "produced_at": datetime.now(UTC).isoformat(), "warnings": [warning] if warning else [],
        })
        self.progress(f"done: {stats.pages} pages, {stats.tweets} tweets", 100)

    def _reconcile(self, client: XClient, window: Window) -> tuple[int | None, str | None]:
        """Expected vs fetched, inside the upload's `with`: failing here publishes nothing."""
        cfg = config.xapi()
        if cfg.reconcile == "off":
            return None, None
        try:
            expected = client.count(cfg.query, window, endpoint=cfg.endpoint)
        except XApiError as exc:
            return None, self.warn(f"counts endpoint unavailable, day not reconciled: {exc}")
        mismatch = reconcile(expected, client.stats.tweets, cfg.count_tolerance)
        if mismatch and cfg.reconcile == "fail":
            raise XApiError(f"{self.date}: {mismatch} (or set [xapi] reconcile = warn)")
        return expected, self.warn(mismatch) if mismatch else None


class CuratedTweets(DayTask):
    """One row per distinct tweet of the day, every user identifier pseudonymised, as Parquet."""

    prefix_setting = "curated_prefix"
    file_name = CURATED_FILE

    def requires(self) -> RawTweets:
        return RawTweets(self.date)

    def output(self) -> luigi.Target:
        return self.storage.target(self.key(self.file_name))

    def run(self) -> None:
        cfg = config.pseudonym()
        pseudonymize = Pseudonymizer(load_key(cfg.key_env, cfg.key_file))
        self.storage.check()
        raw = self.requires()
        curator = Curator(self.date, pseudonymize)
        with self.storage.open_gzip_lines(raw.key(raw.file_name)) as lines, self.output().open("w") as sink:
            stats = write_parquet(self._counted(lines), sink, curator)
        self.storage.put_json(self.key(MANIFEST), {
            "date": self.date.isoformat(), "object": self.key(self.file_name), "rows": stats.rows,
            "raw_pages": stats.pages, "duplicates_dropped": stats.duplicates, "partial_errors": stats.partial_errors,
            "pseudonym_key_id": pseudonymize.key_id, "schema_version": SCHEMA_VERSION, "client_version": __version__,
            "produced_at": datetime.now(UTC).isoformat(),
        })
        self.progress(f"done: {stats.rows} rows", 100)

    def _counted(self, lines: Iterable[bytes]) -> Iterable[bytes]:
        for number, line in enumerate(lines, 1):
            if number % 50 == 0:
                self.progress(f"{number} raw pages curated")
            yield line


class LastWeek(luigi.WrapperTask):
    """The last 7 complete UTC days, for a daily cron line; days already complete are skipped."""

    days = luigi.IntParameter(default=7, description="how many complete days back from yesterday")

    def requires(self) -> list[CuratedTweets]:
        today = datetime.now(UTC).date()
        return [CuratedTweets(today - timedelta(days=n)) for n in range(self.days, 0, -1)]
