"""Thin Luigi tasks: X API -> raw day -> curated day, each writing S3 targets.

The tasks wire `days` (which does the work) to Luigi: parameters, dependencies, progress and
status messages for the scheduler, failure markers. A day is complete when its
`_manifest.json` exists (written last), and both day tasks answer Luigi's `bulk_complete` with
one S3 listing, so `RangeDaily` works on S3.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import ClassVar

import luigi
import luigi.configuration

from flixluigi import config
from flixluigi.days import Reporter, curate_day, fetch_day, make_client, pseudonymizer, reprocess_day
from flixluigi.notify import WARNING_EVENT
from flixluigi.storage import CURATED_FILE, RAW_FILE, Storage, StorageError

log = logging.getLogger("luigi-interface")


class DayParameter(luigi.DateParameter):
    """A UTC day whose parse error names the expected form."""

    def parse(self, s: str) -> date:
        try:
            return super().parse(s)
        except ValueError:
            raise ValueError(f"{s!r} is not a date: use YYYY-MM-DD, e.g. 2022-09-12") from None


class _OncePerProcess(luigi.Task):
    """A check that runs once per worker process and setting; later runs of the process skip it."""

    _passed: ClassVar[set[str]] = set()

    def identity(self) -> str:
        raise NotImplementedError

    def complete(self) -> bool:
        return f"{self.task_family}|{self.identity()}" in self._passed

    def passed(self) -> None:
        self._passed.add(f"{self.task_family}|{self.identity()}")


class Preflight(_OncePerProcess):
    """Settings, secrets and S3 are usable: fail before any work with one line that says what to fix."""

    def identity(self) -> str:
        cfg = luigi.configuration.get_config()
        settings = repr([(s, sorted(cfg.items(s))) for s in ("s3", "storage", "xapi", "pseudonym", "notify") if cfg.has_section(s)])
        names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", config.xapi().token_env, config.pseudonym().key_env)
        return hashlib.sha256((settings + repr([os.environ.get(n) for n in names])).encode()).hexdigest()

    def run(self) -> None:
        config.check_settings()
        if not os.environ.get(config.xapi().token_env):
            raise ValueError(f"no bearer token: export ${config.xapi().token_env} (the X API app's bearer token)")
        pseudonymizer()
        Storage.from_config().check()
        self.passed()


class ApiAvailable(_OncePerProcess):
    """The API answers and accepts the token; checked once per worker process before any fetch."""

    def identity(self) -> str:
        cfg = config.xapi()
        token = os.environ.get(cfg.token_env, "")
        return f"{cfg.base_url}|{cfg.endpoint}|{hashlib.sha256(token.encode()).hexdigest()}"

    def requires(self) -> Preflight:
        return Preflight()

    def run(self) -> None:
        cfg = config.xapi()
        make_client().check(cfg.query, endpoint=cfg.endpoint)
        self.passed()


class DayTask(luigi.Task):
    """A task of one UTC day whose completeness is its manifest in S3."""

    date = DayParameter(description="UTC day, YYYY-MM-DD")
    prefix_setting = ""
    file_name = ""

    @cached_property
    def storage(self) -> Storage:
        return Storage.from_config()

    @classmethod
    def _prefix(cls, store: Storage) -> str:
        return getattr(store, cls.prefix_setting)

    def key(self, name: str) -> str:
        return self.storage.day_key(self._prefix(self.storage), self.date, name)

    def output(self) -> luigi.Target:
        return self.storage.target(self.key(self.file_name))

    def complete(self) -> bool:
        try:
            return self.storage.exists(self.storage.manifest_key(self._prefix(self.storage), self.date))
        except StorageError as exc:
            # Unknown counts as not done: Preflight then fails with this reason in one line.
            log.warning("%s: cannot tell whether it is complete: %s", self, exc)
            return False

    @classmethod
    def bulk_complete(cls, parameter_tuples: Iterable) -> list:
        """One listing of the prefix instead of one request per day (RangeDaily's fast path)."""
        # RangeDaily passes functools.partial(cls, **of_params) as `cls`.
        task_cls = getattr(cls, "func", cls)
        days = list(parameter_tuples)
        store = Storage.from_config()
        done = store.complete_days(task_cls._prefix(store))
        return [day for day in days if day in done]

    def reporter(self) -> Reporter:
        return Reporter(progress=self.progress, warn=self.warn)

    def warn(self, message: str) -> str:
        """Log and raise a pipeline warning; notification handlers subscribe to WARNING_EVENT."""
        log.warning("%s %s: %s", self.task_family, self.date, message)
        self.trigger_event(WARNING_EVENT, self, message)
        return message

    def progress(self, message: str, percent: int | None = None) -> None:
        self.set_status_message(message)
        if percent is not None:
            self.set_progress_percentage(percent)

    def on_failure(self, exception: BaseException) -> str:
        """Leave a failure marker beside the day's manifest (best effort: S3 may be what failed)."""
        error = (str(exception).splitlines() or [type(exception).__name__])[0]
        try:
            self.storage.put_json(self.storage.failure_key(self._prefix(self.storage), self.date),
                                  {"task": str(self), "error": error, "failed_at": datetime.now(UTC).isoformat()})
        except Exception as exc:
            log.warning("could not record the failure of %s in S3: %s", self, exc)
        return super().on_failure(exception)


class RawTweets(DayTask):
    """Every API page of the day, verbatim plus request metadata, one per line in a gzip object."""

    prefix_setting = "raw_prefix"
    file_name = RAW_FILE

    def requires(self) -> luigi.Task:
        return ApiAvailable()

    def run(self) -> None:
        fetch_day(self.storage, self.date, self.reporter())


class CuratedTweets(DayTask):
    """One row per distinct tweet of the day, every user identifier pseudonymised, as Parquet."""

    prefix_setting = "curated_prefix"
    file_name = CURATED_FILE

    def requires(self) -> list[luigi.Task]:
        return [Preflight(), RawTweets(self.date)]

    def run(self) -> None:
        curate_day(self.storage, self.date, pseudonymizer(), self.reporter())


class LastWeek(luigi.WrapperTask):
    """The last 7 complete UTC days, for a daily cron line; days already complete are skipped."""

    days = luigi.IntParameter(default=7, description="how many complete days back from yesterday")

    def requires(self) -> list[CuratedTweets]:
        today = datetime.now(UTC).date()
        return [CuratedTweets(today - timedelta(days=n)) for n in range(self.days, 0, -1)]


class Reprocess(luigi.Task):
    """Rebuild stored days from start to end inclusive, archiving what they replace.

    By default the curated days are rebuilt from the raw days already stored (no API call, any
    past date); --refetch fetches the raw days again first. --dry-run only lists what it would touch.
    """

    start = DayParameter(description="first UTC day, YYYY-MM-DD")
    end = DayParameter(default=None, description="last UTC day, inclusive; default: start (a single day)")
    refetch = luigi.BoolParameter(description="fetch the raw days again from the API before curating")
    dry_run = luigi.BoolParameter(description="list the days and objects it would touch, change nothing")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.end is not None and self.end < self.start:
            raise ValueError(f"--end {self.end} is before --start {self.start}; give the range oldest day first")
        self._done = False

    @property
    def days(self) -> list[date]:
        last = self.end or self.start
        return [self.start + timedelta(days=n) for n in range((last - self.start).days + 1)]

    def requires(self) -> list[luigi.Task]:
        return [] if self.dry_run else [ApiAvailable()] if self.refetch else [Preflight()]

    def complete(self) -> bool:
        return self._done

    def plan(self) -> list[str]:
        """One line per day: the objects it would archive and rebuild."""
        store = Storage.from_config()
        prefixes = [store.curated_prefix, *([store.raw_prefix] if self.refetch else [])]
        raw_days = store.complete_days(store.raw_prefix)
        lines = []
        for day in self.days:
            keys = [key for prefix in prefixes for key in store.day_objects(prefix, day)]
            source = "re-fetch from the API" if self.refetch else (
                "rebuild from stored raw day" if day in raw_days else "NO RAW DAY: would fail")
            lines.append(f"{day}: {source}; archive {', '.join(keys) or 'nothing (no objects yet)'}")
        return lines

    def run(self) -> None:
        if self.dry_run:
            for line in self.plan():
                print(f"dry run: {line}")
            self._done = True
            return
        pseudonymize = pseudonymizer()
        store = Storage.from_config()
        store.check()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        for number, day in enumerate(self.days):
            self.set_status_message(f"reprocessing {day} ({number + 1}/{len(self.days)})")
            archived = reprocess_day(store, day, refetch=self.refetch, stamp=stamp, pseudonymize=pseudonymize,
                                     report=Reporter())
            log.info("reprocessed %s; previous objects kept at %s", day, ", ".join(archived) or "(none)")
            self.set_progress_percentage(100 * (number + 1) // len(self.days))
        self._done = True
