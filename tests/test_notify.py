"""Notifications through Luigi's real events to local Slack and webhook stand-ins over HTTP."""

from __future__ import annotations

import logging
from datetime import date, timedelta

import luigi
import pytest
from luigi.execution_summary import LuigiStatusCode

from devkit import sandbox
from flixluigi import CuratedTweets, RawTweets, notify
from tests.conftest import HMAC_KEY, TIME_SCALE, TOKEN, api_url
from tests.helpers import curated, keys, pointers, records

DAY = date(2022, 9, 12)


def build(*tasks):
    return luigi.build(list(tasks), local_scheduler=True, detailed_summary=True, workers=1)


def test_failure_is_notified_once_with_hint_and_no_secret(pipeline, slack, monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", "wrong-but-secret-token-4711")
    assert not build(CuratedTweets(DAY), CuratedTweets(date(2022, 9, 13))).scheduling_succeeded
    [text] = [m["text"] for m in slack.bodies("/slack")]
    assert text.startswith("flixluigi failure: ApiAvailable: X API rejected the bearer token (HTTP 401: Unauthorized)")
    assert "Hint: renew the bearer token" in text and "luigid" not in text  # local scheduler: no link
    [event] = slack.bodies("/hook")
    assert event["event"] == "failure" and event["task_family"] == "ApiAvailable" and event["link"] is None
    everything = repr(slack.received)
    assert "wrong-but-secret-token-4711" not in everything and HMAC_KEY not in everything
    assert slack.url("/slack") not in everything


def test_day_failure_names_the_day(pipeline, slack, monkeypatch):
    monkeypatch.setattr("flixluigi.work.check_batch", _quality_failure)
    assert not build(CuratedTweets(DAY)).scheduling_succeeded
    [event] = slack.bodies("/hook")
    assert event["day"] == "2022-09-12" and event["error"] == "tweet 1 is outside the day"
    assert f"Reprocess --start {DAY} --refetch" in event["hint"]  # the hint names the day: it works as printed


def test_empty_day_fails_by_default_and_warns_when_asked(pipeline, slack, failures):
    pipeline.set("xapi", "query", "#NoSuchTagAnywhere")
    assert not build(RawTweets(DAY)).scheduling_succeeded
    assert "the API returned no tweet for '#NoSuchTagAnywhere'" in str(failures[-1][1])
    assert keys(pipeline.seaweed.endpoint, f"{pipeline.run}/raw/tweets/date=") == []

    pipeline.set("xapi", "empty_day", "warn")
    assert build(CuratedTweets(DAY)).scheduling_succeeded
    warnings = [e for e in slack.bodies("/hook") if e["event"] == "warning"]
    assert len(warnings) == 1 and "published an empty day" in warnings[0]["error"]
    assert [r["rows"] for r in records(pipeline.seaweed.endpoint, pipeline.run, DAY)] == [0]
    assert curated(pipeline.seaweed.endpoint, pipeline.run, DAY).num_rows == 0


def test_counts_mismatch_is_a_warning(pipeline, slack, monkeypatch):
    from flixluigi.xapi.client import XClient

    monkeypatch.setattr(XClient, "daily_counts", lambda self, query, first, last, **k: {
        first + timedelta(days=n): 10_000 for n in range((last - first).days + 1)})
    assert build(RawTweets(DAY)).scheduling_succeeded
    [warning] = [e for e in slack.bodies("/hook") if e["event"] == "warning"]
    assert "counts endpoint expects 10000" in warning["error"]


def test_undeliverable_notifications_never_fail_the_pipeline(pipeline, slack, monkeypatch):
    monkeypatch.setenv("FLIXLUIGI_SLACK_WEBHOOK", "http://127.0.0.1:9/nothing-listens")
    slack.delay = 3
    pipeline.set("notify", "timeout", "0.5")
    pipeline.set("xapi", "query", "#NoSuchTagAnywhere")
    pipeline.set("xapi", "empty_day", "warn")
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logging.getLogger("luigi-interface").addHandler(handler)
    try:
        assert build(RawTweets(DAY)).scheduling_succeeded
    finally:
        logging.getLogger("luigi-interface").removeHandler(handler)
    logged = "\n".join(records)
    assert "Slack notification not delivered (ConnectionError)" in logged
    assert "webhook notification not delivered (ReadTimeout)" in logged
    assert "nothing-listens" not in logged


@pytest.mark.faults
def test_transient_failure_is_retried_in_the_task_and_not_notified(pipeline, slack, failures):
    """An API fault a retry can mend is retried by the client (the day's one retry budget; [days]
    tries never retry it again), with the wait announced in the log; the scheduler never sees a
    failure, so nothing is notified."""
    faults = sandbox.Faults(rate=1.0, kinds=("503",))
    flaky = sandbox.start(token=TOKEN, faults=faults, time_scale=TIME_SCALE)
    announced: list[str] = []

    def heal(record: logging.LogRecord) -> bool:
        if "; retry 1 in " in record.getMessage():
            announced.append(record.getMessage())
            faults.rate = 0.0  # the API recovers while the task waits
        return True

    handler = logging.Handler()
    handler.emit = heal
    logging.getLogger("flixluigi.xapi.client").addHandler(handler)
    try:
        pipeline.set("xapi", "base_url", api_url(flaky))
        pipeline.set("xapi", "max_tries", "2")
        result = build(RawTweets(DAY))
    finally:
        logging.getLogger("flixluigi.xapi.client").removeHandler(handler)
        flaky.shutdown()
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    assert len(announced) == 1 and "HTTP 503" in announced[0], announced
    assert failures == [] and [e for e in slack.bodies("/hook") if e["event"] == "failure"] == []
    assert len(pointers(pipeline.seaweed.endpoint, pipeline.run, DAY)) == 1


def test_redact_hides_every_configured_secret(monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", "AAAAtokenvalue")
    monkeypatch.setenv("FLIXLUIGI_HMAC_KEY", "hmac-secret-value-0123456789abcdef0123")
    monkeypatch.setenv("FLIXLUIGI_SLACK_WEBHOOK", "https://hooks.example/T000/B000/XXXX")
    text = "token AAAAtokenvalue key hmac-secret-value-0123456789abcdef0123 url https://hooks.example/T000/B000/XXXX"
    assert notify.redact(text) == "token [redacted] key [redacted] url [redacted]"


def _quality_failure(*args: object, **kwargs: object) -> None:
    from flixluigi.errors import QualityError

    raise QualityError("tweet 1 is outside the day")


class _Unknowable(luigi.Task):
    """A task whose dependencies cannot be worked out: Luigi reports it BROKEN_TASK."""

    def requires(self) -> list:
        raise RuntimeError("cannot reach the catalogue")


def test_broken_task_is_notified(pipeline, slack):
    assert not build(_Unknowable()).scheduling_succeeded
    [event] = slack.bodies("/hook")
    assert event["event"] == "broken task" and event["error"] == "cannot reach the catalogue"
    assert event["hint"].startswith("the task could not be scheduled")


def test_long_rate_limit_waits_are_a_warning(pipeline, slack):
    limited = sandbox.start(token=TOKEN, rate_limit=1, rate_window=1 / TIME_SCALE, time_scale=TIME_SCALE)
    try:
        pipeline.set("xapi", "base_url", api_url(limited))
        pipeline.set("xapi", "long_wait_warning", "0.5")
        assert build(RawTweets(DAY)).scheduling_succeeded
    finally:
        limited.shutdown()
    [warning] = [e for e in slack.bodies("/hook") if e["event"] == "warning"]
    assert "s for rate limits" in warning["error"] and "waits)" in warning["error"]


def test_out_of_credits_is_notified_once_per_run_whichever_days_meet_it(pipeline, slack, serve, failures):
    """402 CreditsDepleted is about the account: two days fail with it, one notification, no retry."""
    broke = serve(faults=sandbox.Faults(rate=1.0, kinds=("402",), path="/search/"))
    pipeline.set("xapi", "base_url", api_url(broke))
    assert not build(CuratedTweets(DAY), CuratedTweets(DAY + timedelta(days=1))).scheduling_succeeded
    assert broke.paths_served["/2/tweets/search/all"] == 2  # one request a day, never retried
    assert sum("credits depleted" in str(exc) for _task, exc in failures) == 2
    [event] = [e for e in slack.bodies("/hook") if "credits depleted" in e["error"]]
    assert event["hint"].startswith("buy credits")
