"""Every way the API has been seen to misbehave, over HTTP through the real client and tasks.

Each case runs `CuratedTweets` against a sandbox that misbehaves one way (a fault option of
devkit/sandbox), on the sandbox's time scale with small configured deadlines, and checks: the day
fails with its one named line after a bounded number of requests (the count, never the time),
nothing of the day is published, `flixluigi verify` stays clean, and a later run against a
healthy API completes the day.
"""

from __future__ import annotations

import json
import time
from datetime import date

import pytest
from luigi.execution_summary import LuigiStatusCode

from devkit import sandbox
from devkit.sandbox.server import API_VERSION
from flixluigi import CuratedTweets, Reprocess
from flixluigi.errors import first_line
from flixluigi.ops.actions import vacuum
from flixluigi.ops.status import verify
from flixluigi.store import rejected
from flixluigi.store.s3 import Storage
from flixluigi.store.state import layout
from flixluigi.work import page_bounds
from flixluigi.xapi.client import counts_path, day_window, search_path
from tests.conftest import api_url
from tests.helpers import body, build, keys, pointers

DAY = date(2022, 9, 12)
MISSING = f"{DAY}: missing: no raw fetch and no curated day stored; run luigi --module flixluigi CuratedTweets --date {DAY}"
SEARCH, COUNTS = search_path("all"), counts_path("all")
MAX_TRIES, IDLE_PAGES = 2, 3
# Measured on each run and printed at the end of the session (the closing table).
TIMINGS: list[tuple[str, str, float, str]] = []

# case id -> (Faults options, the named line, {path: requests the fault run sends})
CASES = {
    "token-repeats": ({"page": "token-loop", "path": "/search/", "after": 2},
                      "page 3 returned a next_token seen before in this run", {SEARCH: 3}),
    "new-token-same-posts": ({"page": "token-endless", "path": "/search/"},
                             f"{IDLE_PAGES} pages in a row added nothing new and paging goes on", {SEARCH: IDLE_PAGES + 1}),
    "new-token-new-posts": ({"page": "posts-endless", "path": "/search/"}, "pages and paging goes on, far more than", None),
    "counts-page-forever": ({"page": "counts-endless", "path": "/counts/", "after": 1},
                            "1 pages in a row added nothing new and paging goes on", {COUNTS: 3, SEARCH: 0}),
    "429-without-headers": ({"rate": 1.0, "kinds": ("429-bare",), "path": "/search/"},
                            f"{SEARCH} still rate limited after {MAX_TRIES} waits; run later", {SEARCH: MAX_TRIES + 1}),
    "body-trickles": ({"rate": 1.0, "kinds": ("trickle",), "path": "/search/", "slow_seconds": 0.02},
                      "no answer from http://127.0.0.1:", {SEARCH: MAX_TRIES}),
    "html-body": ({"rate": 1.0, "kinds": ("html",), "path": "/search/"},
                  "the API answered text/html, not JSON: a proxy, or a wrong [xapi] base_url?", {SEARCH: 1}),
    "lone-surrogate": ({"rate": 1.0, "kinds": ("surrogate",), "path": "/search/"},
                       "the API's JSON holds a bad escape \\ud800 at offset", {SEARCH: 1}),
    "gzip-undecodable": ({"rate": 1.0, "kinds": ("bad-gzip",), "path": "/search/"},
                         "the API's body does not decompress (Content-Encoding gzip)", {SEARCH: 1}),
    "truncated-body": ({"rate": 1.0, "kinds": ("truncate",), "path": "/search/"},
                       f"incomplete JSON body from {SEARCH}", {SEARCH: MAX_TRIES}),
    "result-count-without-data": ({"page": "no-data", "path": "/search/", "after": 1},
                                  "meta.result_count is 100 but which holds 0 posts", {SEARCH: 2}),
    "post-outside-window": ({"page": "outside-window", "path": "/search/"},
                            "is outside the requested window 2022-09-12T00:00Z..2022-09-13T00:00Z", {SEARCH: 1}),
    "created-at-malformed": ({"page": "bad-created-at", "path": "/search/"},
                             "has created_at 'Mon Sep 12 08:00:00 +0000 2022', not an RFC 3339 UTC time", {SEARCH: 1}),
    "edit-id-not-an-id": ({"page": "bad-edit-id", "path": "/search/"},
                          "has edit_history_tweet_ids ['not-an-id',", {SEARCH: 1}),
    "author-id-a-number": ({"page": "author-int", "path": "/search/"}, ", not an id string", {SEARCH: 1}),
    "requested-field-dropped": ({"page": "field-dropped", "path": "/search/"},
                                "asked for tweet.fields public_metrics but no post of the first page has them", {SEARCH: 1}),
    "402-credits-depleted": ({"rate": 1.0, "kinds": ("402",), "path": "/search/"},
                             "X API credits depleted (HTTP 402: CreditsDepleted", {SEARCH: 1}),
    "usage-cap": ({"usage_capped": True}, "X API usage cap reached (UsageCapExceeded", {SEARCH: 0}),
}


@pytest.fixture(scope="module", autouse=True)
def closing_table():
    """The issue's closing table (case, error, time to fail, last line): shown with `pytest -s`."""
    yield
    for case, error, seconds, line in TIMINGS:
        print(f"| {case} | {error} | {seconds:.1f} s | {line} |")


def warm(server: sandbox.SandboxServer) -> sandbox.SandboxServer:
    """Have the sandbox work out the month and the day once, in-process (no request is counted or
    faulted): a cold month of counts takes seconds on a busy machine, longer than the small timeout."""
    month = {"start_time": "2022-09-01T00:00:00Z", "end_time": "2022-10-01T00:00:00Z", "granularity": "day"}
    server.api.handle(COUNTS, {"query": "#FlixBus", **month})
    server.api.handle(SEARCH, {"query": "#FlixBus", **day_window(DAY, "all").params(), "max_results": "100"})
    return server


def stored_counts(pipeline) -> int:
    key = next(k for k in keys(pipeline.seaweed.endpoint, f"{pipeline.run}/") if "/counts/" in k)
    return json.loads(body(pipeline.seaweed.endpoint, key))["days"][DAY.isoformat()]


@pytest.mark.parametrize("case", list(CASES))
def test_a_misbehaving_api_fails_the_day_at_once_in_one_line_and_a_healthy_one_completes_it(pipeline, serve, failures, case):
    options, line, requests = CASES[case]
    pipeline.set("xapi", "max_tries", str(MAX_TRIES))
    pipeline.set("xapi", "idle_pages", str(IDLE_PAGES))
    pipeline.set("xapi", "timeout", "1")  # a trickle never completes
    pipeline.set("days", "tries", "3")  # the day's tries never retry an API fault again
    bad = warm(serve(volume=300, faults=sandbox.Faults(**options)))
    pipeline.set("xapi", "base_url", api_url(bad))
    started = time.monotonic()
    result = build(CuratedTweets(DAY))
    elapsed = time.monotonic() - started
    assert result.status == LuigiStatusCode.FAILED, result.summary_text
    error = failures[-1][1]
    TIMINGS.append((case, type(error).__name__, elapsed, first_line(error)))
    assert line in str(error)
    assert "\n" not in str(error)
    if requests is None:  # as many pages as the day's expected posts allow, with the slack
        requests = {SEARCH: page_bounds(stored_counts(pipeline))[0]}
    assert {path: bad.paths_served[path] for path in requests} == requests
    # Nothing of the day: no raw fetch, pointer or table (the month's counts and a rejected fetch may stay).
    stored = keys(pipeline.seaweed.endpoint, f"{pipeline.run}/")
    assert [k for k in stored if not any(f"/records/{kind}/" in k for kind in ("counts", "failed", "rejected"))] == []
    assert verify(DAY, DAY) == [MISSING]
    refused = [json.loads(body(pipeline.seaweed.endpoint, k)) for k in stored if "/records/rejected/" in k]
    if refused:  # kept outside the raw prefix, with every post the sandbox billed that could be read
        unreadable = 100 if case == "lone-surrogate" else 0  # billed, but a body that does not parse names no post
        assert [(r["error"], r["posts_read"]) for r in refused] == [(first_line(error), bad.billing.posts_billed - unreadable)]
    pipeline.set("xapi", "base_url", api_url(pipeline.api_server))
    pipeline.set("xapi", "timeout", "10")
    assert build(CuratedTweets(DAY)).status == LuigiStatusCode.SUCCESS
    assert verify(DAY, DAY) == []
    pointer = json.loads(body(pipeline.seaweed.endpoint, pointers(pipeline.seaweed.endpoint, pipeline.run, DAY)[-1]))
    assert pointer["rejected_fetches"] == [r["fetch"] for r in refused]
    assert pointer["rejected_cost"] == round(sum(r["cost"] for r in refused), 4) and pointer["api_version"] == API_VERSION


def test_a_slow_api_meets_the_fetch_deadline_after_one_request(pipeline, serve, failures):
    """Every answer takes 0.4 s; the fetch may take 0.2 s besides announced waits: one page, then the deadline."""
    pipeline.set("xapi", "deadline_base", "0.2")
    pipeline.set("xapi", "deadline_per_page", "0")
    bad = warm(serve(volume=300, faults=sandbox.Faults(rate=1.0, kinds=("slow",), slow_seconds=0.4, path="/search/")))
    pipeline.set("xapi", "base_url", api_url(bad))
    result = build(CuratedTweets(DAY))
    assert result.status == LuigiStatusCode.FAILED, result.summary_text
    assert "past its deadline of 0s ([xapi] deadline_base, deadline_per_page)" in str(failures[-1][1])
    assert bad.paths_served[SEARCH] == 1


def test_after_max_rejections_in_a_row_the_day_is_not_fetched_again_until_reprocess_refetch(pipeline, serve, failures):
    pipeline.set("xapi", "max_rejections", "2")
    bad = warm(serve(volume=300, faults=sandbox.Faults(page="outside-window", path="/search/")))
    pipeline.set("xapi", "base_url", api_url(bad))
    for _ in range(2):
        assert build(CuratedTweets(DAY)).status == LuigiStatusCode.FAILED
    assert bad.paths_served[SEARCH] == 2
    assert build(CuratedTweets(DAY)).status == LuigiStatusCode.FAILED
    assert bad.paths_served[SEARCH] == 2  # nothing more requested, nothing more billed
    assert "the last 2 fetches were rejected (last: /2/tweets/search/all: post" in str(failures[-1][1])
    assert "then run Reprocess --start 2022-09-12 --refetch" in str(failures[-1][1])
    endpoint = pipeline.seaweed.endpoint
    refused = [k for k in keys(endpoint, f"{pipeline.run}/") if "/records/rejected/" in k]
    assert len(refused) == 2 and not [k for k in keys(endpoint, f"{pipeline.run}/raw/")]
    assert verify(DAY, DAY) == [MISSING]  # the rejected fetches are never current: only noted
    assert len(rejected.notes(Storage.from_config(), layout(), DAY, DAY)) == 2
    pipeline.set("xapi", "base_url", api_url(pipeline.api_server))
    assert build(CuratedTweets(DAY)).status == LuigiStatusCode.FAILED  # a healthy API changes nothing by itself
    assert build(Reprocess(start=DAY, refetch=True)).status == LuigiStatusCode.SUCCESS
    assert verify(DAY, DAY) == []
    pipeline.set("storage", "keep_versions_days", "0")
    pipeline.set("storage", "min_file_age_hours", "0")
    assert sum(line.endswith(tuple(refused)) for line in vacuum(apply=True)) == 2
    assert [k for k in keys(endpoint, f"{pipeline.run}/") if "/records/rejected/" in k] == []
