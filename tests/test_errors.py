"""The one error protocol, the one day-range builder, a day's retries and the stamps: fast unit tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime

import luigi.configuration
import pytest
from luigi.task_register import Register

from flixluigi import errors
from flixluigi.dates import day_range, month_of
from flixluigi.errors import (
    RERUN,
    ComplianceFault,
    ComplianceUnauthorized,
    ComplianceUnreachable,
    FlixluigiError,
    InvalidRange,
    NoRawDay,
    StorageError,
    TransientFault,
    TransientStorageError,
    first_line,
    hint_of,
    is_transient,
)
from flixluigi.store.layout import new_fetch_id, parse_stamp, stamp
from flixluigi.work import Reporter, with_retries


def test_every_error_is_a_flixluigi_error_that_says_whether_a_retry_mends_it():
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, BaseException)]
    assert len(classes) > 25 and all(issubclass(c, FlixluigiError) for c in classes)
    assert all("transient" in vars(c) for c in classes)
    assert {c.__name__ for c in classes if c.transient} == {
        "TransientFault", "ComplianceFault", "JobFailed", "TransientStorageError", "CommitConflict"}


def test_the_hint_travels_with_the_error_and_a_compliance_error_has_its_api_kind_hint():
    assert hint_of(ComplianceFault("x")) == hint_of(TransientFault("x")) != RERUN
    assert hint_of(ComplianceUnauthorized("x")) == errors.Unauthorized.hint
    assert hint_of(ComplianceUnreachable("x")) == errors.ApiUnreachable.hint
    assert hint_of(TransientStorageError("x")) == StorageError.hint
    assert hint_of(NoRawDay("x", hint="run RawTweets --date 2022-09-12")) == "run RawTweets --date 2022-09-12"
    assert NoRawDay.hint != "run RawTweets --date 2022-09-12"  # an instance's hint leaves the class's alone
    assert hint_of(KeyError("bug")) == RERUN and hint_of(None) == RERUN
    assert not is_transient(OSError("not ours")) and is_transient(ComplianceFault("x"))
    assert isinstance(InvalidRange("x"), ValueError) and isinstance(NoRawDay("x"), LookupError)


def test_first_line_folds_whitespace_caps_the_length_and_names_a_silent_error():
    assert first_line(StorageError("S3 failed:\n  Caused by:\n\tconnection reset")) == "S3 failed: Caused by: connection reset"
    assert first_line(KeyError()) == "KeyError"
    assert len(first_line(ValueError("x" * 2000))) == errors.MAX_LINE


def test_day_range_is_inclusive_defaults_to_one_day_and_refuses_a_reversed_range():
    assert day_range(date(2022, 2, 27), date(2022, 3, 1)) == [date(2022, 2, 27), date(2022, 2, 28), date(2022, 3, 1)]
    assert day_range(date(2022, 9, 12)) == [date(2022, 9, 12)]
    with pytest.raises(InvalidRange, match=r"^--end 2022-09-10 is before --start 2022-09-12; give the range oldest day first$"):
        day_range(date(2022, 9, 12), date(2022, 9, 10))
    assert len(month_of(date(2024, 2, 10))) == 29 and month_of(date(2022, 12, 31))[-1] == date(2022, 12, 31)


def test_stamps_are_parsed_as_they_are_formatted():
    when = datetime(2022, 9, 12, 3, 4, 5, 678901, tzinfo=UTC)
    assert parse_stamp(stamp(when)) == when and parse_stamp(new_fetch_id(when)) == when
    assert new_fetch_id(when, "00000000") == "20220912T030405678901Z-00000000"


@pytest.fixture
def days_settings() -> Iterator[Callable[[int, float], None]]:
    cfg = luigi.configuration.get_config()
    before = dict(cfg.items("days")) if cfg.has_section("days") else None

    def set_days(tries: int, retry_delay: float) -> None:
        if not cfg.has_section("days"):
            cfg.add_section("days")
        cfg.set("days", "tries", str(tries))
        cfg.set("days", "retry_delay", str(retry_delay))
        Register.clear_instance_cache()

    yield set_days
    cfg.remove_section("days")
    if before is not None:
        cfg.add_section("days")
        for key, value in before.items():
            cfg.set("days", key, value)
    Register.clear_instance_cache()


def failing(*outcomes: BaseException | None) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def action() -> str:
        calls.append(1)
        outcome = outcomes[len(calls) - 1]
        if outcome is not None:
            raise outcome
        return "done"

    return calls, action


def test_a_day_is_retried_after_transient_faults_and_waits_exactly_what_it_announces(days_settings, monkeypatch):
    days_settings(tries=3, retry_delay=0.25)  # read at call time, not at import
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    said: list[str] = []
    calls, action = failing(TransientFault("HTTP 503"), TransientStorageError("S3 busy"), None)
    assert with_retries(action, "RawTweets 2022-09-12", Reporter(progress=lambda message, percent=None: said.append(message))) == "done"
    assert len(calls) == 3 and slept == [0.25, 0.25]
    assert said == ["RawTweets 2022-09-12: HTTP 503; retrying in 0s (try 2 of 3)",
                    "RawTweets 2022-09-12: S3 busy; retrying in 0s (try 3 of 3)"]


def test_a_permanent_failure_is_raised_at_once_and_the_last_transient_one_after_the_tries(days_settings, monkeypatch):
    days_settings(tries=2, retry_delay=0)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    calls, action = failing(NoRawDay("no raw day"))
    with pytest.raises(NoRawDay):
        with_retries(action, "CuratedTweets", Reporter())
    assert len(calls) == 1
    calls, action = failing(TransientFault("a"), TransientFault("b"), None)
    with pytest.raises(TransientFault, match=r"^b$"):
        with_retries(action, "RawTweets", Reporter())
    assert len(calls) == 2
