"""The client against the sandbox over HTTP: paging, windows, rate limits, every fault class."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import pytest
import requests

from devkit import sandbox
from flixluigi.errors import InvalidRequest, Unauthorized, UsageCapped, XApiError
from flixluigi.xapi.client import XClient, day_window, reconcile, search_path
from tests.conftest import TIME_SCALE, TOKEN, api_url

DAY = date(2022, 9, 12)
WINDOW = day_window(DAY, "all")


def client(server, **options) -> XClient:
    return XClient(api_url(server), TOKEN, **{"backoff_factor": 0.01, "timeout": 5,
                                               "min_interval": {search_path("all"): TIME_SCALE}, **options})


def fetch_ids(c: XClient, max_results: int = 10) -> list[str]:
    return [t["id"] for page in c.search("#FlixBus", WINDOW, max_results=max_results) for t in page.body.get("data", ())]


def test_pages_until_next_token_is_absent(serve):
    server = serve(volume=300)
    c = client(server)
    ids = fetch_ids(c, 100)
    assert len(ids) == len(set(ids)) == c.stats.tweets
    assert c.stats.pages == -(-len(ids) // 100)
    assert server.statuses == {200: c.stats.pages}


def test_day_window_refuses_unfinished_days_and_dates_outside_the_endpoint():
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    with pytest.raises(XApiError, match="has not ended yet"):
        day_window(date(2026, 11, 25), "all", now)
    with pytest.raises(XApiError, match="set \\[xapi\\] endpoint = all"):
        day_window(date(2026, 11, 1), "recent", now)
    assert day_window(date(2026, 11, 24), "recent", now).end == datetime(2026, 11, 25, tzinfo=UTC)
    with pytest.raises(XApiError, match="before the first tweet"):
        day_window(date(2001, 1, 1), "all", now)


def test_recent_endpoint_answers_old_start_time_with_the_real_400(serve):
    c = client(serve())
    with pytest.raises(InvalidRequest, match="'start_time' must be on or after"):
        next(c.search("#FlixBus", WINDOW, endpoint="recent", max_results=10))


def test_max_results_out_of_range_is_the_real_400(serve):
    c = client(serve())
    with pytest.raises(InvalidRequest, match=r"The `max_results` query parameter value \[5\] is not between 10 and 500"):
        next(c.search("#FlixBus", WINDOW, max_results=5))


def test_wrong_token_fails_at_once(serve):
    server = serve()
    with pytest.raises(Unauthorized, match="HTTP 401: Unauthorized"):
        next(XClient(api_url(server), "wrong").search("#FlixBus", WINDOW))
    assert server.requests_served == 1


def test_usage_cap_fails_at_once_without_retry(serve):
    server = serve(faults=sandbox.Faults(usage_capped=True))
    with pytest.raises(UsageCapped, match="UsageCapExceeded"):
        next(client(server).search("#FlixBus", WINDOW))
    assert server.requests_served == 1


def test_rate_limit_headers_are_honoured_without_429s(serve):
    server = serve(volume=300, rate_limit=4, rate_window=1 / TIME_SCALE)
    statuses = []
    c = client(server, on_status=statuses.append)
    started = time.monotonic()
    ids = fetch_ids(c, 10)
    assert len(ids) == len(set(ids)) > 200
    assert server.statuses[429] == 0
    assert c.stats.rate_limit_waits >= 5
    assert any(s.startswith("rate limited, resuming at ") and s.endswith("Z") for s in statuses)
    assert time.monotonic() - started >= c.stats.pages // 4 - 1


def test_rate_limit_wait_longer_than_allowed_fails_with_the_setting_to_change(serve):
    server = serve(rate_limit=1, rate_window=120 / TIME_SCALE)
    with pytest.raises(XApiError, match=r"max_rate_limit_wait"):
        fetch_ids(client(server, max_rate_limit_wait=5))


@pytest.mark.faults
@pytest.mark.parametrize("kind", ["429", "500", "502", "503", "504", "slow", "drop", "truncate"])
def test_each_fault_class_is_survived_with_the_same_tweets(serve, kind):
    clean = fetch_ids(client(serve(volume=200)), 10)
    server = serve(volume=200, faults=sandbox.Faults(rate=0.3, kinds=(kind,), seed=7, slow_seconds=1.5))
    c = client(server, timeout=1.0) if kind == "slow" else client(server)
    assert fetch_ids(c, 10) == clean
    assert server.faults_injected[kind] > 0
    assert c.stats.retries + c.stats.rate_limit_waits >= server.faults_injected[kind] - (kind == "slow")


@pytest.mark.faults
def test_all_faults_mixed_give_identical_ids(serve):
    clean = fetch_ids(client(serve(volume=400)), 10)
    server = serve(volume=400, faults=sandbox.Faults(rate=0.1, seed=3, slow_seconds=1.2))
    assert fetch_ids(client(server, timeout=1.0), 10) == clean
    assert sum(server.faults_injected.values()) > 0


def test_persistent_5xx_gives_up_after_max_tries(serve):
    server = serve(faults=sandbox.Faults(rate=1.0, kinds=("503",)))
    with pytest.raises(XApiError, match="HTTP 503"):
        next(client(server, max_tries=3).search("#FlixBus", WINDOW))
    assert server.requests_served == 3


def test_counts_agree_with_search(serve):
    server = serve(volume=300)
    c = client(server)
    ids = fetch_ids(c, 100)
    assert c.daily_counts("#FlixBus", DAY, DAY) == {DAY: len(ids)}
    hourly = requests.get(f"{api_url(server)}/2/tweets/counts/all", headers={"Authorization": f"Bearer {TOKEN}"},
                          params={"query": "#FlixBus", **WINDOW.params()}, timeout=10).json()
    assert len(hourly["data"]) == 24 and sum(b["tweet_count"] for b in hourly["data"]) == len(ids)
    assert set(hourly["data"][0]) == {"start", "end", "tweet_count"}


def test_reconcile_tolerance():
    assert reconcile(100, 100, 0.0) is None
    assert reconcile(100, 99, 0.01) is None
    assert "fetched 98 tweets but the counts endpoint expects 100 (-2" in reconcile(100, 98, 0.01)


def test_unfinished_day_window_is_refused_before_any_call():
    with pytest.raises(XApiError, match="has not ended yet"):
        day_window(datetime.now(UTC).date() + timedelta(days=1), "all")


def test_the_fetch_deadline_leaves_out_the_waits_the_api_announced(serve):
    """One request per 1.5 s window: the waits for its resets (~3-4.5 s) pass a 2 s deadline, which only the fetch's own time counts."""
    server = serve(volume=300, rate_limit=1, rate_window=1.5 / TIME_SCALE)
    c = client(server, deadline=2.0)
    ids = fetch_ids(c, 100)
    assert len(ids) > 200 and c.stats.rate_limit_waits >= 2 and c.stats.rate_limit_wait_seconds > 2.0
