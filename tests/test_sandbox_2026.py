"""The X API as it is in 2026, over HTTP against the sandbox at 1/100 time: the 1 request/s rule,
usage cap and usage endpoint, pay-per-use counters, long posts, edits, no retweets, paging quirks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest
import requests

from devkit import sandbox
from devkit.sandbox.generator import LONG_TAIL, TEXT_LIMIT
from flixluigi import config
from flixluigi.curation.curator import Curator
from flixluigi.curation.gate import check_batch
from flixluigi.curation.pseudonym import Pseudonymizer
from flixluigi.curation.schema import SCHEMA
from flixluigi.errors import InvalidRequest, SettingsError, UsageCapped
from flixluigi.xapi import billing as cost
from flixluigi.xapi import client as xapi
from flixluigi.xapi.client import XClient, counts_path, day_window, search_path
from tests.conftest import TIME_SCALE, TOKEN, api_url

DAY = date(2024, 3, 5)  # after edits (2022-09-29) and long posts (2023-02-08) arrived
ALL = search_path("all")
FIELDS = {"tweet.fields": config.DEFAULT_TWEET_FIELDS, "user.fields": config.DEFAULT_USER_FIELDS,
          "expansions": config.DEFAULT_EXPANSIONS}
PSEUDO = Pseudonymizer(b"unit-test-key-0123456789abcdef0123")


def client(server: sandbox.SandboxServer, interval: float = TIME_SCALE, **options) -> XClient:
    return XClient(api_url(server), TOKEN, backoff_factor=0.01, timeout=5, min_interval={ALL: interval}, **options)


def pages(c: XClient, day: date = DAY, query: str = "#FlixBus", max_results: int = 100, fields: dict | None = None) -> list[dict]:
    return [p.body for p in c.search(query, day_window(day, "all"), max_results=max_results,
                                      fields=FIELDS if fields is None else fields)]


def raw_get(server: sandbox.SandboxServer, path: str, **params: str) -> requests.Response:
    return requests.get(api_url(server) + path, params=params, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)


def curate(raw: list[dict], day: date = DAY) -> pa.Table:
    curator = Curator(day, PSEUDO, datetime(2026, 1, 1, tzinfo=UTC))
    batches = list(curator.batches(raw))
    for batch in batches:
        check_batch(batch, curator.stats)
    return pa.Table.from_batches(batches, SCHEMA)


# --- the 1 request/s rule and 429s ---------------------------------------------------------

def test_full_archive_allows_one_request_per_interval_with_the_real_429(serve):
    server = serve(time_scale=0.5)  # 0.5 s apart at least: two loopback requests in a row are closer
    window = day_window(DAY, "all").params()
    first = raw_get(server, ALL, query="#FlixBus", **window)
    second = raw_get(server, ALL, query="#FlixBus", **window)
    assert first.status_code == 200 and second.status_code == 429
    assert second.json() == {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}
    assert int(second.headers["x-rate-limit-remaining"]) > 0
    assert second.headers["x-rate-limit-remaining"] == first.headers["x-rate-limit-remaining"]  # a refused request costs no slot
    assert raw_get(server, search_path("recent"), query="#FlixBus").status_code == 200  # recent search has no such rule


def test_paced_client_meets_no_429_and_waits_before_its_first_request(serve):
    server = serve(volume=600)
    first, second = client(server), client(server)  # two processes of one app, one after the other
    assert sum(len(p.get("data", ())) for p in pages(first)) > 500
    pages(second)
    assert server.statuses[429] == 0
    assert first.stats.requests[ALL] == first.stats.pages and first.stats.throttled == 0


def test_429_with_requests_left_waits_the_interval_not_the_window(serve):
    # 0.5 s between requests: an unpaced client's next request comes sooner; a spent window would mean 450 s
    server = serve(volume=30, time_scale=0.5)
    unpaced = client(server, interval=0.0, max_rate_limit_wait=1)
    got = pages(unpaced, max_results=10)
    assert server.statuses[429] == unpaced.stats.throttled > 0
    assert unpaced.stats.rate_limit_waits == 0
    assert [t["id"] for p in got for t in p.get("data", ())] == [t["id"] for p in pages(client(server, interval=0.5),
                                                                                        max_results=10)
                                                                  for t in p.get("data", ())]


def test_usage_cap_fails_at_once_with_the_api_words_although_requests_remain(serve):
    server = serve(volume=300, usage_cap=50)
    c = client(server)
    with pytest.raises(UsageCapped, match="UsageCapExceeded - Usage cap exceeded: Monthly product cap"):
        pages(c, max_results=10)
    assert server.statuses[429] == 1 and c.stats.requests[ALL] == 6  # 5 pages of 10, then the cap: never retried
    capped = raw_get(server, ALL, query="#FlixBus", **day_window(DAY, "all").params())
    assert capped.json()["type"] == "https://api.twitter.com/2/problems/usage-capped"
    assert int(capped.headers["x-rate-limit-remaining"]) > 0


def test_context_annotations_over_100_is_refused_by_the_api_and_by_the_settings_check(serve, pipeline):
    server = serve()
    fields = {"tweet.fields": "id,text,context_annotations"}
    with pytest.raises(InvalidRequest, match=r"HTTP 400: Invalid Request - One or more parameters to your request was "
                                             r"invalid. - when requesting `tweet.fields=context_annotations` `max_results` "
                                             r"must be less than or equal to `100`"):
        pages(client(server), max_results=500, fields=fields)
    assert server.requests_served == 1
    assert len(pages(client(server), max_results=100, fields=fields)) > 0
    pipeline.set("xapi", "tweet_fields", "id,text,context_annotations")
    pipeline.set("xapi", "max_results", "500")
    with pytest.raises(SettingsError, match=r"max_results = 500 must be 10..100 for endpoint = all with context_annotations"):
        config.check_settings()


def test_any_other_4xx_fails_at_once(serve):
    server = serve()
    with pytest.raises(InvalidRequest, match=r"unexpected HTTP 404 from http://127.0.0.1:\d+/2/tweets/search/nope: Sorry, that page does not exist"):
        next(client(server).search("#FlixBus", day_window(DAY, "all"), endpoint="nope"))
    assert server.requests_served == 1


def test_every_error_class_says_whether_a_retry_can_help():
    classes = [c for c in vars(xapi).values() if isinstance(c, type) and issubclass(c, xapi.XApiError)]
    assert {c.__name__: c.transient for c in classes} == {
        "XApiError": False, "DayNotServable": False, "ApiUnreachable": False, "Unauthorized": False, "InvalidRequest": False, "UsageCapped": False,
        "RateLimited": False, "MalformedResponse": False, "TransientFault": True, "CreditsDepleted": False,
        "FetchDeadline": False, "RetriesExhausted": False}
    assert all("transient" in vars(c) for c in classes)


# --- paging -----------------------------------------------------------------------------------

def test_pagination_token_is_a_synonym_of_next_token(serve):
    server = serve()
    recent = search_path("recent")  # no per-second rule: the raw requests may follow each other at once
    window = day_window(datetime.now(UTC).date() - timedelta(days=2), "recent").params()
    token = raw_get(server, recent, query="#FlixBus", max_results="10", **window).json()["meta"]["next_token"]
    by_next = raw_get(server, recent, query="#FlixBus", max_results="10", next_token=token, **window).json()
    by_pagination = raw_get(server, recent, query="#FlixBus", max_results="10", pagination_token=token, **window).json()
    assert by_next == by_pagination and by_next["data"]
    bad = raw_get(server, recent, query="#FlixBus", pagination_token="nonsense", **window)
    assert bad.status_code == 400 and "`pagination_token` query parameter value [nonsense]" in bad.text
    counts = counts_path("all")
    forty = {"query": "#FlixBus", "granularity": "day", "start_time": "2024-01-01T00:00:00Z", "end_time": "2024-02-10T00:00:00Z"}
    first = raw_get(server, counts, **forty).json()
    rest = raw_get(server, counts, **forty, pagination_token=first["meta"]["next_token"]).json()
    assert len(first["data"]) == 31 and len(rest["data"]) == 9 and "next_token" not in rest["meta"]
    assert rest == raw_get(server, counts, **forty, next_token=first["meta"]["next_token"]).json()


def test_no_retweets_from_2026_05_04_and_empty_pages_keep_paging(serve):
    server = serve(volume=200)
    c = client(server)
    before = [t for p in pages(c, date(2026, 5, 3)) for t in p.get("data", ())]
    since = [t for p in pages(c, date(2026, 5, 4)) for t in p.get("data", ())]
    retweet = {"type": "retweeted"}
    assert any(retweet.items() <= r.items() for t in before for r in t.get("referenced_tweets", ()))
    assert not any(r["type"] == "retweeted" for t in since for r in t.get("referenced_tweets", ()))
    assert c.daily_counts("#FlixBus", date(2026, 5, 4), date(2026, 5, 4)) == {date(2026, 5, 4): len(since)}
    only_retweets = client(server)
    empty = pages(only_retweets, date(2026, 5, 4), query="#FlixBus is:retweet", max_results=10)
    assert len(empty) > 1 and all("data" not in p for p in empty)
    assert all("next_token" in p["meta"] for p in empty[:-1]) and only_retweets.stats.tweets == 0


# --- long posts and edits -----------------------------------------------------------------------

def test_long_posts_come_cut_in_text_and_whole_in_note_tweet_and_curate_whole(serve):
    server = serve()
    raw = pages(client(server))
    long = {t["id"]: t for p in raw for t in p["data"] if "note_tweet" in t}
    assert long and all(len(t["text"]) == TEXT_LIMIT and len(t["note_tweet"]["text"]) > TEXT_LIMIT for t in long.values())
    plain = pages(client(server), fields={"tweet.fields": "id,text,created_at"})
    assert not any("note_tweet" in t for p in plain for t in p["data"])
    table = curate(raw)
    texts = dict(zip(table.column("tweet_id").to_pylist(), table.column("text").to_pylist(), strict=True))
    for tid in long:
        if tid in texts:
            assert len(texts[tid]) > TEXT_LIMIT and LONG_TAIL.strip()[:40] in texts[tid]


def test_long_posts_under_note_post_curate_whole_as_under_note_tweet(serve):
    """X's newer naming (`note_post`) gives the same rows as `note_tweet`."""
    raw = pages(client(serve()))
    renamed = [{**p, "data": [{("note_post" if k == "note_tweet" else k): v for k, v in t.items()} for t in p["data"]]}
               for p in raw]
    assert any("note_post" in t for p in renamed for t in p["data"])
    assert curate(renamed).drop_columns(["processed_at"]) == curate(raw).drop_columns(["processed_at"])


def test_one_row_per_edit_chain_with_the_newest_version_whatever_the_order(serve):
    raw = pages(client(serve()))
    posts = [t for p in raw for t in p["data"]]
    chains: dict[str, list[str]] = {}
    for t in posts:
        chains.setdefault(min(t["edit_history_tweet_ids"], key=int), []).append(t["id"])
    assert any(len(ids) > 1 for ids in chains.values())
    expected = {chain: max(ids, key=int) for chain, ids in chains.items()}
    for order in (raw, raw[::-1], [{**p, "data": p["data"][::-1]} for p in raw[::-1]]):  # newest first, oldest first
        table = curate(order)
        rows = dict(zip(table.column("edit_chain_id").to_pylist(), table.column("tweet_id").to_pylist(), strict=True))
        assert rows == expected and table.num_rows == len(chains)
    histories = table.column("edit_history_tweet_ids").to_pylist()
    assert all(h == sorted(h, key=int) and h[0] == c for h, c in zip(histories, table.column("edit_chain_id").to_pylist(),
                                                                      strict=True))


def test_an_older_version_is_published_when_the_newest_is_not_in_the_day():
    def post(tid: str, chain: list[str]) -> dict:
        return {"id": tid, "text": f"#FlixBus version {tid}", "created_at": "2022-09-12T23:40:00.000Z",
                "edit_history_tweet_ids": chain}
    chain = ["1569470000000000000", "1569471000000000000", "1569472000000000000"]  # the last one fell on the next day
    table = curate([{"data": [post(chain[0], chain)]}, {"data": [post(chain[1], chain)]}], date(2022, 9, 12))
    assert table.column("tweet_id").to_pylist() == [chain[1]]
    assert table.column("edit_history_tweet_ids").to_pylist() == [chain]


# --- cost -------------------------------------------------------------------------------------

def test_billing_counts_a_post_once_a_day_and_usage_reports_it(serve):
    server = serve()
    c = client(server)
    posts = {t["id"] for p in pages(c) for t in p["data"]}
    pages(c)  # the same day again: the same posts, the same UTC day
    assert server.billing.posts_billed == len(posts) == c.stats.posts_read
    assert server.billing.posts_served == 2 * len(posts)
    assert c.usage() == len(posts)
    c.check("#FlixBus")
    assert server.billing.posts_billed == len(posts) and server.billing.count_requests == 1
    assert c.stats.requests[counts_path("all")] == 1 and c.stats.requests[xapi.USAGE_PATH] == 1


def test_daily_counts_use_one_request_per_31_days(serve):
    server = serve(volume=20)
    c = client(server)
    daily = c.daily_counts("#FlixBus", date(2022, 8, 1), date(2022, 9, 9))
    assert list(daily) == [date(2022, 8, d) for d in range(1, 32)] + [date(2022, 9, d) for d in range(1, 10)]
    assert server.billing.count_requests == c.stats.requests[counts_path("all")] == 2
    assert daily[date(2022, 9, 9)] == c.daily_counts("#FlixBus", date(2022, 9, 9), date(2022, 9, 9))[date(2022, 9, 9)] > 0
    with pytest.raises(InvalidRequest, match="end day 2022-08-01 is before start day 2022-09-01; swap them"):
        c.daily_counts("#FlixBus", date(2022, 9, 1), date(2022, 8, 1))


def test_estimate_and_budget_are_plain_arithmetic():
    daily = {date(2022, 8, d): 100 for d in range(1, 32)} | {date(2022, 9, 1): 50}
    estimate = cost.estimate(daily, price_per_post=0.005, price_per_count_request=0.01)
    assert (estimate.days, estimate.expected_posts, estimate.count_requests) == (32, 3150, 4)
    assert estimate.cost == pytest.approx(3150 * 0.005 + 4 * 0.01)
    assert estimate.line() == "32 days, 3150 posts expected, estimated cost $15.79 (4 counts requests included)"
    assert cost.counts_requests(31) == 1 and cost.counts_requests(32) == 2 and cost.counts_requests(0) == 0
    assert cost.budget_problem(300, 700, 0) is None and cost.budget_problem(300, 700, 1000) is None
    assert cost.budget_problem(301, 700, 1000) == ("301 posts expected but only 300 of the month's budget of 1000 are "
                                                   "left (700 read); raise [xapi] monthly_post_budget or wait for the "
                                                   "next billing period")


# --- the switch back --------------------------------------------------------------------------

def test_legacy_sandbox_keeps_the_old_api(serve):
    server = serve(legacy=True, time_scale=1.0)
    c = client(server, interval=0.0)
    posts = [t for p in pages(c, date(2026, 5, 10), max_results=10) for t in p.get("data", ())]
    assert server.statuses[429] == 0 and c.stats.pages > 1
    assert not any("note_tweet" in t or len(t["edit_history_tweet_ids"]) > 1 for t in posts)
    assert any(r["type"] == "retweeted" for t in posts for r in t.get("referenced_tweets", ()))
