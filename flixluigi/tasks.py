"""Thin Luigi tasks: parameters, dependencies, progress, failure records; `work` does the work.

Start-up checks (`Preflight`, `ApiAvailable`) are gates that every run passes for itself. No task
is ever disabled by the scheduler (luigid would keep it disabled for a day): a failed check or day
stops this run's dependants at once (`[worker] keep_alive = false`: nothing waits for a scheduler
retry), transient faults are retried inside the task (`[days] tries`), permanent ones fail at once,
and the next run tries again. Completeness
is read from S3 and the Delta table, never from process memory; `bulk_complete` answers for any
number of days from one snapshot.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

import luigi
import luigi.configuration
import luigi.interface
from luigi.cmdline_parser import CmdlineParser
from luigi.tools.range import RangeBase

from flixluigi import config, runs
from flixluigi.dates import day_range
from flixluigi.errors import (
    FlixluigiError,
    InvalidDate,
    InvalidRange,
    OverBudget,
    Unauthorized,
    first_line,
    hint_of,
)
from flixluigi.notify import WARNING_EVENT
from flixluigi.store.s3 import Storage
from flixluigi.store.state import Snapshot, current, layout, snapshot
from flixluigi.work import (
    Reporter,
    backfill_days,
    check_backfill_budget,
    counts_current,
    curate_day,
    fetch_counts,
    fetch_day,
    fetch_days,
    make_client,
    month_days,
    pseudonymizer,
    reprocess_plan,
    sharing,
    with_retries,
)
from flixluigi.xapi.client import servable

if TYPE_CHECKING:
    from flixluigi.store.lake import CuratedTable

log = logging.getLogger("luigi-interface")


def _load_commit_modules() -> None:
    """In the scheduling process, before `--workers N` forks a day's task: the commit's modules
    (deltalake's Python side and its library's relocations; no runtime, which must not cross a
    fork) are loaded once here instead of in every fork: ~17 ms of CPU a day (benchmarks/reprocess.py)."""
    import flixluigi.store.lake  # noqa: F401


os.register_at_fork(before=_load_commit_modules)
STARTED = datetime.now(UTC).replace(tzinfo=None)


def _report_failure(task: luigi.Task | str, exception: BaseException) -> str:
    """The one line the run ends with, with what to do about it (a day's task names its day, and
    its hint's commands name it too); `task` may be the line's subject itself."""
    day = getattr(task, "date", None)
    subject = task if isinstance(task, str) else f"{task.task_family} {day.isoformat()} failed" if day else \
        f"{task.task_family} failed"
    line = f"{subject}: {first_line(exception)} (fix: {hint_of(exception, day)})"
    runs.record_failure(line)
    return line


def _refuse(task: luigi.Task | str, error: FlixluigiError) -> None:
    """A bad argument. Under the `luigi` command it ends the command at once, before any work, with
    exit code 2 and its one line last (Luigi would print an "Uncaught exception" traceback and exit
    40); in `luigi.build` (a program, a test) it is raised as it is."""
    if CmdlineParser.get_instance() is None:
        raise error
    _report_failure(task, error)
    raise SystemExit(2)


@luigi.Task.event_handler(luigi.Event.BROKEN_TASK)
def _broken(task: luigi.Task, exception: BaseException) -> None:
    """A task whose requires() raised, in the process that schedules it: its line, not Luigi's
    banner, ends the run."""
    _report_failure(task, exception)


@RangeBase.event_handler(luigi.Event.DEPENDENCY_MISSING)
def _reversed_range(task: RangeBase) -> None:
    """Luigi's RangeDaily refuses a reversed range in complete() ("Can't have start > stop", exit 35
    after its banner); its line with the fix comes from here, where it is scheduled (a task class of
    ours named RangeDaily would make `luigi RangeDaily` ambiguous)."""
    if task.start and task.stop and task.start > task.stop:
        _report_failure(task, InvalidRange(f"--stop {task.stop} is before --start {task.start}",
                                           hint="give --start the first day and --stop the day after the last "
                                                f"(exclusive), e.g. --start {task.stop} --stop {task.start}"))


def _scheduler_options() -> list[str]:
    """How the running `luigi` command reaches its scheduler, for a command it prints to run again."""
    if CmdlineParser.get_instance() is None:
        return []
    core = luigi.interface.core()
    if core.local_scheduler:
        return ["--local-scheduler"]
    return ["--scheduler-url", core.scheduler_url] if core.scheduler_url else \
        ["--scheduler-host", core.scheduler_host, "--scheduler-port", str(core.scheduler_port)]


def _status_reporter(task: luigi.Task) -> Reporter:
    """Progress of a task that is not a day's: its status message in the scheduler."""
    return Reporter(progress=lambda message, percent=None: task.set_status_message(message))


class InstantParameter(luigi.DateSecondParameter):
    """A UTC time to the microsecond. At whole seconds, a day built earlier in the second a
    Reprocess started would count as rebuilt by it, and the Reprocess would skip it."""

    date_format = "%Y-%m-%dT%H%M%S.%f"

    def parse(self, s: str) -> datetime:
        try:
            return super().parse(s)
        except ValueError:
            return datetime.strptime(s, "%Y-%m-%dT%H%M%S")  # whole seconds, as earlier versions printed it

    def normalize(self, dt: datetime | None) -> datetime | None:
        return dt


class DayParameter(luigi.DateParameter):
    """A UTC day whose parse error names the expected form."""

    def parse(self, s: str) -> date:
        try:
            return super().parse(s)
        except ValueError:
            _refuse("bad argument", InvalidDate(f"{s!r} is not a date: use YYYY-MM-DD, e.g. 2022-09-12"))
            raise


class NeverDisabled:
    """Retry policy of tasks the scheduler must never disable: no failures are counted within a 0 s
    window. A failed task waits for the next run, which tries it again, instead of staying disabled
    in luigid for `disable_persist` (a day)."""

    retry_count = 2
    disable_window = 0


class Gate(NeverDisabled, luigi.Task):
    """A check every run must pass before any work; its result belongs to the run.

    The task is the same in every run (so under luigid every day depends on the same check, whoever
    added it last), but it is complete only once this run has passed it: a marker in the run's own
    directory, which every worker process of the run sees.
    """

    def check(self) -> None:
        raise NotImplementedError

    def complete(self) -> bool:
        return runs.passed(self.task_family)

    def run(self) -> None:
        with_retries(self.check, self.task_family, _status_reporter(self))
        runs.mark_passed(self.task_family)

    def on_failure(self, exception: BaseException) -> str:
        return _report_failure(self, exception)


class Preflight(Gate):
    """Settings, secrets and S3 are usable: fail before any work with one line that says what to fix."""

    def check(self) -> None:
        config.check_all()  # again: a program's luigi.build() may have changed them since the process checked
        if not os.environ.get(config.xapi().token_env):
            raise Unauthorized(f"no bearer token: export ${config.xapi().token_env} (the X API app's bearer token)")
        pseudonymizer()
        Storage.from_config().check_at_start()
        runs.prune()


class ApiAvailable(Gate):
    """The API answers and accepts the token; checked once a run, and only when a fetch is needed."""

    resources: ClassVar[dict[str, int]] = {"x_api": 1}

    def requires(self) -> Preflight:
        return Preflight()

    def check(self) -> None:
        cfg = config.xapi()
        make_client().check(cfg.query, endpoint=cfg.endpoint)


def _gates(api: bool = False) -> list[luigi.Task]:
    gate = ApiAvailable if api else Preflight
    return [gate()]


def _curated_table() -> CuratedTable:
    """Imported here, in the process that commits: deltalake is not needed to schedule (and must not
    be used before the fork of `--workers N`)."""
    from flixluigi.store.lake import CuratedTable

    return CuratedTable.from_config()


def _counts_needed() -> bool:
    """The month's counts are fetched when a fetch is reconciled or budgeted against them."""
    cfg = config.xapi()
    return cfg.reconcile != "off" or cfg.monthly_post_budget > 0


class DayTask(NeverDisabled, luigi.Task):
    """A task of one UTC day whose completeness is read from S3 and the Delta table."""

    date = DayParameter(description="UTC day, YYYY-MM-DD")

    @property
    def storage(self) -> Storage:
        """Looked up at each use (a cached client per process): a task object made in the scheduling
        process runs in a forked child, which must not reuse its parent's pooled connections."""
        return Storage.from_config()

    @classmethod
    def done_among(cls, state: Snapshot, days: list[date]) -> list[date]:
        """The complete ones among `days` in a snapshot."""
        raise NotImplementedError

    @classmethod
    def needs_records(cls) -> bool:
        return True

    def complete(self) -> bool:
        """From the day's own keys only: Luigi asks every required day, one task at a time."""
        return bool(self.completed_of([self.date]))

    @classmethod
    def completed_of(cls, days: list[date], skip_unservable: bool = False) -> list[date]:
        """The complete ones among `days`, from one snapshot (of the day's own keys for a single day).
        Unknown counts as not done: S3 being down
        or the key missing is then reported by Preflight in one line. With `skip_unservable`, days the
        endpoint cannot serve and that have no stored raw day count as done too (nothing to fetch)."""
        try:
            state = snapshot(cls.needs_records(), days)
            done = cls.done_among(state, days)
        except Exception as exc:
            log.warning("%s: cannot tell which days are complete: %s", cls.__name__, first_line(exc))
            return []
        if not skip_unservable:
            return done
        for day in done:  # RangeDaily asks for the range: these days are not scheduled, the summary names them
            runs.record_outcome("complete", cls.__name__, day.isoformat())
        finished = set(done)
        endpoint = config.xapi().endpoint
        skipped = [day for day in days if day not in finished and not state.raw_complete(day) and servable(day, endpoint)]
        if skipped:
            log.warning("%s: skipping %d day(s) from %s to %s that [xapi] endpoint = %s cannot serve (%s)", cls.__name__,
                        len(skipped), min(skipped), max(skipped), endpoint, servable(skipped[0], endpoint))
        return [day for day in days if day in finished or day in skipped]

    @classmethod
    def bulk_complete(cls, parameter_tuples: Iterable) -> list:
        """RangeDaily's question for a whole range, from one snapshot (a constant number of requests).

        Days the endpoint cannot serve and that have no stored raw day count as done here, with one
        log line: a range over them has nothing to fetch (`complete()` still says no, so a single
        such day asked for by name fails with its reason)."""
        task_cls = getattr(cls, "func", cls)  # RangeDaily passes functools.partial(cls, **of_params)
        return task_cls.completed_of(list(parameter_tuples), skip_unservable=True)

    def deps(self) -> list[luigi.Task]:
        """Luigi asks this of the days it schedules to run, where it schedules them (no event fires for
        them): the day is recorded as the total of the run's progress."""
        runs.record_planned(self.task_family, self.date.isoformat())
        return super().deps()

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

    def outcome(self, outcome: str, **numbers: object) -> None:
        """What the day's task did, for the run's summary (`runs`); and every few days of a long run,
        how many of the run's days of this task are done and when the rest should be."""
        runs.record_outcome(outcome, self.task_family, self.date.isoformat(), **numbers)
        total = runs.planned(self.task_family)
        done = [entry for entry in runs.outcomes() if entry["task"] == self.task_family and entry["outcome"] != "complete"]
        finished, failed = len({entry["day"] for entry in done}), len({e["day"] for e in done if e["outcome"] == "failed"})
        if total > 1 and finished and (finished % max(5, total // 20) == 0 or finished >= total):
            left = (time.time() - runs.STARTED) / finished * max(total - finished, 0)
            log.info("%s: %d of %d days done (%d failed), ETA %s", self.task_family, min(finished, total), total, failed,
                     f"{left // 3600:.0f}:{left % 3600 // 60:02.0f}:{left % 60:02.0f}")

    def succeeded(self, outcome: str, **numbers: object) -> None:
        self.storage.delete(layout().failure_key(self.task_family, self.date))
        self.outcome(outcome, **numbers)

    def on_failure(self, exception: BaseException) -> str:
        """A failure marker for `flixluigi status` (best effort: S3 may be what failed), and the run's last line."""
        line = _report_failure(self, exception)
        self.outcome("failed")
        try:
            now = datetime.now(UTC)
            self.storage.put_json(layout().failure_key(self.task_family, self.date),
                                  {"task": str(self), "error": first_line(exception), "hint": hint_of(exception, self.date),
                                   "started_at": getattr(self, "started_at", now).isoformat(), "failed_at": now.isoformat()})
        except Exception as exc:
            log.warning("could not record the failure of %s in S3: %s", self, first_line(exc))
        return line


@DayTask.event_handler(luigi.Event.START)
def _attempt_started(task: DayTask) -> None:
    """When the attempt began, in the process that runs it: its failure marker is outdated by any
    success written after that (`store.layout.current_failure`)."""
    task.started_at = datetime.now(UTC)


@DayTask.event_handler(luigi.Event.DEPENDENCY_PRESENT)
def _already_complete(task: DayTask) -> None:
    runs.record_outcome("complete", task.task_family, task.date.isoformat())


class MonthCounts(NeverDisabled, luigi.Task):
    """The counts endpoint's posts per day of a month, stored: what every day of the month is
    reconciled and budgeted against, for one counts request a month instead of one a day. Complete
    when the stored counts cover every day of the month the endpoint can fetch now."""

    month = luigi.MonthParameter(description="the month, YYYY-MM")
    resources: ClassVar[dict[str, int]] = {"x_api": 1}

    def requires(self) -> list[luigi.Task]:
        return _gates(api=True)

    def complete(self) -> bool:
        try:
            store, key = Storage.from_config(), layout().counts_key(self.month)
            if not store.exists(key):
                return False
            stored = store.get_json(key)
        except Exception as exc:
            log.warning("%s: cannot tell whether it is complete: %s", self, first_line(exc))
            return False
        return counts_current(stored) and {day.isoformat() for day in month_days(self.month)} <= set(stored["days"])

    def run(self) -> None:
        report = _status_reporter(self)
        with_retries(lambda: fetch_counts(Storage.from_config(), self.month, report), f"MonthCounts {self.month:%Y-%m}", report)

    def on_failure(self, exception: BaseException) -> str:
        return _report_failure(self, exception)


class ChainSpan(luigi.Task):
    """The range of days a run asked for, handed down to the day's fetch so that it chains only
    neighbours the run wants (a Backfill's range; a day asked for alone, or by RangeDaily, which
    passes only the date, is fetched alone). Insignificant: the same day is one task whatever the
    range that asked for it."""

    chain_from = DayParameter(default=None, significant=False, description="first day of the range that asked for "
                                                                           "this day (default: the day)")
    chain_to = DayParameter(default=None, significant=False, description="last day of the range that asked for "
                                                                         "this day (default: the day)")

    def chain_span(self) -> dict[str, date | None]:
        return {"chain_from": self.chain_from, "chain_to": self.chain_to}


class RawTweets(ChainSpan, DayTask):
    """Every API page of the day, verbatim plus request metadata, as a new immutable fetch."""

    resources: ClassVar[dict[str, int]] = {"x_api": 1}

    @classmethod
    def needs_records(cls) -> bool:
        return False

    @classmethod
    def done_among(cls, state: Snapshot, days: list[date]) -> list[date]:
        return [day for day in days if state.raw_complete(day)]

    def requires(self) -> list[luigi.Task]:
        counts = [MonthCounts(self.date.replace(day=1))] if _counts_needed() else []
        return [*_gates(api=True), *counts]

    def run(self) -> None:
        """With its missing neighbours in the asked range as one chain (`fetch_days`); a day a
        neighbour's chain fetched since it was scheduled is complete now, and is not fetched (billed) again."""
        if self.complete():
            self.succeeded("complete")
            return
        span = (self.chain_from or self.date, self.chain_to or self.date)
        pointers = with_retries(lambda: fetch_days(self.storage, self.date, span, self.reporter()), f"RawTweets {self.date}",
                                self.reporter())
        for day, pointer in pointers.items():
            if day != self.date:  # a neighbour's fetch in this one's chain; its own task finds it complete
                runs.record_outcome("fetched", self.task_family, day.isoformat(), **_billed(pointer))
        self.succeeded("fetched", **_billed(pointers[self.date]))


class CuratedTweets(ChainSpan, DayTask):
    """One row per distinct post of the day's current raw fetch, pseudonymised, in the Delta table."""

    @classmethod
    def done_among(cls, state: Snapshot, days: list[date]) -> list[date]:
        key_id, shared = pseudonymizer().key_id, sharing()
        return [day for day in days if state.curated_complete(day, key_id, shared)]

    def requires(self) -> list[luigi.Task]:
        return [*_gates(), RawTweets(self.date, **self.chain_span())]

    def run(self) -> None:
        key = pseudonymizer()
        record = with_retries(lambda: curate_day(self.storage, _curated_table(), self.date, key, self.reporter()),
                              f"CuratedTweets {self.date}", self.reporter())
        outcome, numbers = _published("curated", record)
        self.succeeded(outcome, **numbers)


class RangeTask(NeverDisabled, luigi.Task):
    """Parameters and validation of an inclusive range of days."""

    start = DayParameter(description="first UTC day, YYYY-MM-DD")
    end = DayParameter(default=None, description="last UTC day, inclusive; default: start (a single day)")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        try:
            day_range(self.start, self.end)
        except InvalidRange as error:
            _refuse(self, error)

    @property
    def days(self) -> list[date]:
        return day_range(self.start, self.end)


class DaysWrapper(luigi.WrapperTask):
    """Curated days asked for as a set, answered from one snapshot read per question: complete when
    every wanted day is, requiring only the days that are not (as RangeDaily does through
    `bulk_complete`). Nothing is kept between questions: Luigi's instance cache keeps this object
    alive across builds of one process, and a later build must see the store as it is then."""

    @property
    def span(self) -> list[date]:
        """The days the wrapper may want (what its snapshot lists)."""
        raise NotImplementedError

    def wanted(self, state: Snapshot, check_budget: bool) -> list[date]:
        raise NotImplementedError

    def missing(self, state: Snapshot, check_budget: bool = False) -> list[date]:
        wanted = self.wanted(state, check_budget)
        done = set(CuratedTweets.done_among(state, wanted))
        return [day for day in wanted if day not in done]

    def complete(self) -> bool:
        try:
            return not self.missing(snapshot(days=self.span))
        except Exception as exc:
            log.warning("%s: cannot tell whether it is complete: %s", self, first_line(exc))
            return False

    def requires(self) -> list[CuratedTweets]:
        """The incomplete days; every wanted day when the store cannot be read (Preflight then says why)."""
        try:
            days = self.missing(snapshot(days=self.span), check_budget=True)
        except OverBudget:
            raise
        except Exception as exc:
            log.warning("%s: cannot tell which days are complete: %s", self, first_line(exc))
            days = self.wanted(Snapshot({}, {}), check_budget=False)
        span = self.span
        return [CuratedTweets(day, chain_from=span[0], chain_to=span[-1]) for day in days]


class Backfill(RangeTask, DaysWrapper):
    """Every missing day from start to end inclusive; days the endpoint cannot serve are skipped with one line."""

    @property
    def span(self) -> list[date]:
        return self.days

    def wanted(self, state: Snapshot, check_budget: bool) -> list[date]:
        """The days to run; refuses, before any fetch, a range whose expected posts exceed the month's budget."""
        what = f"Backfill {self.start}..{self.end}"
        days = backfill_days(state, self.days, what)
        try:
            if check_budget:
                check_backfill_budget(state, days, what)
        except OverBudget as error:
            _report_failure(self, error)
            raise
        return days


class LastWeek(DaysWrapper):
    """The last 7 complete UTC days, for a daily cron line; days already complete are skipped."""

    days = luigi.IntParameter(default=7, description="how many complete days back from yesterday")

    @property
    def span(self) -> list[date]:
        today = datetime.now(UTC).date()
        return day_range(today - timedelta(days=self.days), today - timedelta(days=1)) if self.days > 0 else []

    def wanted(self, state: Snapshot, check_budget: bool) -> list[date]:
        return self.span


class Rebuild(DayTask):
    """One day rebuilt as a new table version (and, with refetch, a new raw fetch) after `since`."""

    refetch = luigi.BoolParameter(description="fetch the raw day again from the API first")
    since = InstantParameter(description="UTC time the rebuild was asked for; done once a build is newer")

    @classmethod
    def done_among(cls, state: Snapshot, days: list[date]) -> list[date]:
        raise NotImplementedError("a rebuild is complete by its own time, see complete()")

    def complete(self) -> bool:
        try:
            return _rebuilt_since(self.storage, self.date, self.since, self.refetch)
        except Exception as exc:
            log.warning("%s: cannot tell whether it is complete: %s", self, first_line(exc))
            return False

    def requires(self) -> list[luigi.Task]:
        counts = [MonthCounts(self.date.replace(day=1))] if self.refetch and _counts_needed() else []
        return [*_gates(api=self.refetch), *counts]

    @property
    def resources(self) -> dict[str, int]:
        return {"x_api": 1} if self.refetch else {}

    def run(self) -> None:
        key, report = pseudonymizer(), self.reporter()

        def rebuild() -> dict:
            if self.refetch:  # also after [xapi] max_rejections refused fetches in a row
                pointer = fetch_day(self.storage, self.date, report, force=True)
                runs.record_outcome("fetched", self.task_family, self.date.isoformat(), **_billed(pointer))
            return curate_day(self.storage, _curated_table(), self.date, key, report, force=True, reason="reprocess")

        outcome, numbers = _published("rebuilt", with_retries(rebuild, f"Rebuild {self.date}", report))
        self.succeeded(outcome, **numbers)


def _billed(pointer: dict) -> dict:
    return {"posts_read": pointer.get("posts_read") or 0, "cost": pointer.get("cost") or 0.0}


def _published(outcome: str, record: dict) -> tuple[str, dict]:
    """A curated day's outcome and rows; `complete` when another writer had committed the same build."""
    return (outcome, {"rows": record["rows"]}) if record.get("table_version") is not None else ("complete", {})


def _rebuilt_since(store: Storage, day: date, since: datetime, refetch: bool) -> bool:
    """Whether the day's current curated build (and raw fetch, with refetch) was made after `since`."""
    record, pointer = current(store, day)
    after = since.replace(tzinfo=UTC).isoformat()
    if record is None or record["produced_at"] < after:
        return False
    return not refetch or (pointer is not None and pointer["produced_at"] >= after)


class Compliance(RangeTask):
    """Apply X's batch compliance results to every stored day from start to end inclusive: removed
    posts and users leave the raw and curated days (new fetches and commits), their history is purged
    after [compliance] purge_after_hours. Done once every day was checked after `since`."""

    since = luigi.DateSecondParameter(default=STARTED, description="days checked after this UTC time count as done "
                                                                   "(default: when the command started)")
    resources: ClassVar[dict[str, int]] = {"x_api": 1}

    def requires(self) -> list[luigi.Task]:
        return _gates(api=True)

    def complete(self) -> bool:
        from flixluigi.compliance.apply import load_state

        try:
            checked = load_state(Storage.from_config(), layout())["days"]
        except Exception as exc:
            log.warning("%s: cannot tell whether it is complete: %s", self, first_line(exc))
            return False
        state = snapshot(False, self.days)
        after = self.since.replace(tzinfo=UTC).isoformat()
        return all(checked.get(day.isoformat(), {}).get("checked_at", "") >= after for day in self.days
                   if state.raw_complete(day))

    def run(self) -> None:
        from flixluigi.compliance.apply import comply

        report = _status_reporter(self)
        checked, removed = with_retries(lambda: comply(self.start, self.end or self.start, report), "Compliance", report)
        for day, counts in sorted(removed.items()):
            print(f"compliance: {day}: removed " + ", ".join(f"{count} {what}" for what, count in counts.items()), flush=True)
        print(f"compliance: {len(checked)} stored day(s) checked, {len(removed)} changed", flush=True)
        totals: dict[str, int] = {}
        for counts in removed.values():
            for what, count in counts.items():
                totals[what] = totals.get(what, 0) + count
        runs.record_outcome("compliance", self.task_family, days=[day.isoformat() for day in checked], removed=totals)

    def on_failure(self, exception: BaseException) -> str:
        return _report_failure(self, exception)


class Reprocess(RangeTask):
    """Rebuild stored days from start to end inclusive as new versions; old ones stay readable.

    By default the curated days are rebuilt from the raw fetches already stored (no API call, any
    past date); --refetch fetches the raw days again first. --dry-run only lists what it would do.
    An interrupted Reprocess resumes where it stopped when run again with the same --since.
    """

    refetch = luigi.BoolParameter(description="fetch the raw days again from the API before curating")
    dry_run = luigi.BoolParameter(description="list the days and what it would do, change nothing")
    since = InstantParameter(default=STARTED, description="days rebuilt after this UTC time count as done "
                                                          "(default: when the command started)")

    def requires(self) -> list[luigi.Task]:
        return [] if self.dry_run else [Rebuild(day, refetch=self.refetch, since=self.since) for day in self.days]

    def complete(self) -> bool:
        if self.dry_run:
            return False
        done = all(task.complete() for task in self.requires())
        if not done:  # asked while scheduling: printed at exit unless run() finishes (a failure, Ctrl-C)
            runs.set_resume(self.resume_command())
        return done

    def resume_command(self) -> str:
        """This Reprocess with its --since as the parameter parses it: run again, it skips the days done."""
        params = self.to_str_params()
        return " ".join(["luigi --module flixluigi Reprocess --start", params["start"], *(["--end", params["end"]] if self.end else []),
                         *(["--refetch"] if self.refetch else []), "--since", params["since"], *_scheduler_options()])

    def run(self) -> None:
        if self.dry_run:
            print("\n".join(reprocess_plan(self.days, self.refetch)))
        else:
            runs.finished_resumable()
            log.info("Reprocess: %d day(s) rebuilt since %s; the same again: %s", len(self.days), self.to_str_params()["since"],
                     self.resume_command())
