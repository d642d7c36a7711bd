"""Page validation and paging guards (flixluigi.xapi.pages): pure functions, no services."""

from __future__ import annotations

import copy
import json
from datetime import date

import pytest

from flixluigi.config import DEFAULT_TWEET_FIELDS
from flixluigi.errors import MalformedResponse, TransientFault
from flixluigi.xapi.client import day_window
from flixluigi.xapi.pages import PageGuard, decode, validate_counts_page, validate_page
from tests.conftest import FIXTURES

WINDOW = day_window(date(2022, 9, 12), "all")
ASKED = DEFAULT_TWEET_FIELDS.split(",")
WHERE = "/2/tweets/search/all"


def post(n: int = 1, **fields: object) -> dict:
    return {"id": str(1000 + n), "text": f"post {n} #FlixBus", "author_id": "42", "created_at": "2022-09-12T08:00:00.000Z",
            "conversation_id": str(1000 + n), "lang": "en", "public_metrics": {"like_count": 0},
            "edit_history_tweet_ids": [str(1000 + n)], **fields}


def page(*posts: dict, **meta: object) -> dict:
    return {"data": list(posts), "meta": {"result_count": len(posts), **meta}}


def test_recorded_pages_pass_as_the_api_sent_them():
    for name in ("2sets.jsonl", "noflat.jsonl", "two_tweets.jsonl"):
        for number, line in enumerate((FIXTURES / name).read_text().splitlines()):
            body = json.loads(line)
            ids = validate_page(body, None, fields=ASKED, first=number == 0)
            assert ids == [t["id"] for t in body.get("data", ())]


def test_a_good_page_gives_its_ids():
    assert validate_page(page(post(1), post(2), next_token="abc"), WINDOW, fields=ASKED, first=True) == ["1001", "1002"]
    assert validate_page({"meta": {"result_count": 0, "next_token": "x"}}, WINDOW, fields=ASKED, first=True) == []


@pytest.mark.parametrize("body, message", [
    ([], "not an object"),
    ({"data": []}, "without meta/data"),
    ({"data": {}, "meta": {}}, "without meta/data"),
    ({"meta": {"result_count": 100}}, "meta.result_count is 100 but which holds 0 posts"),
    ({"meta": {"result_count": 0, "next_token": ""}}, "meta.next_token is '', not a token"),
    (page(post(1, created_at="2022-09-13T00:00:00.000Z")), "outside the requested window 2022-09-12T00:00Z..2022-09-13T00:00Z"),
    (page(post(1, created_at="12 Sep 2022")), "created_at '12 Sep 2022', not an RFC 3339 UTC time"),
    (page(post(1, edit_history_tweet_ids=["1001", "x1"])), "edit_history_tweet_ids ['1001', 'x1'], not a list of id strings"),
    (page(post(1, author_id=42)), "has author_id 42, not an id string"),
    (page(post(1, id=1001)), "has id 1001, not an id string"),
    (page({k: v for k, v in post(1).items() if k != "author_id"}), "has no author_id, which every post must have"),
    (page(post(1), {k: v for k, v in post(2).items() if k != "edit_history_tweet_ids"}), "has no edit_history_tweet_ids"),
    ({**page(post(1)), "includes": {"users": [{"id": 7}]}}, "includes.users is not a list of users with id strings"),
])
def test_a_bad_page_is_refused_naming_the_fault(body, message):
    with pytest.raises(MalformedResponse) as caught:
        validate_page(body, WINDOW, fields=ASKED, where=WHERE)
    assert message in str(caught.value)


def test_optional_fields_never_fail_and_note_post_is_a_long_post():
    assert validate_page(page(post(1), post(2, note_post={"text": "long"}, geo={})), WINDOW, fields=ASKED, first=True)


def test_a_requested_field_the_api_dropped_fails_on_the_first_page_only():
    dropped = [{k: v for k, v in post(n).items() if k != "public_metrics"} for n in (1, 2)]
    with pytest.raises(MalformedResponse, match=r"asked for tweet\.fields public_metrics but no post of the first page"):
        validate_page(page(*dropped), WINDOW, fields=ASKED, first=True)
    assert validate_page(page(*dropped), WINDOW, fields=ASKED, first=False) == ["1001", "1002"]


@pytest.mark.parametrize("content, content_type, error, message", [
    (b"<html><body>Bad gateway</body></html>", "text/html", MalformedResponse,
     "the API answered text/html, not JSON: a proxy, or a wrong [xapi] base_url?"),
    (b'{"data":[{"id":"1","text":"\\ud800"}]}', "application/json", MalformedResponse, "bad escape \\ud800 at offset 27"),
    (b'{"data":[{"id":"1","text":"ab', "application/json", TransientFault, "incomplete JSON body from x (29 bytes, cut short)"),
    (b"", "application/json", MalformedResponse, "an empty body"),
])
def test_what_arrived_instead_of_json_is_named(content, content_type, error, message):
    with pytest.raises(error) as caught:
        decode(content, content_type, "x")
    assert message in str(caught.value)
    assert type(caught.value) is error


def test_an_escaped_pair_is_good_json():
    assert decode(b'{"t":"\\ud83d\\ude8c bus"}', "application/json", "x") == {"t": "\U0001f68c bus"}


def test_counts_pages():
    body = {"data": [{"start": "2022-09-12T00:00:00.000Z", "end": "x", "tweet_count": 5}], "meta": {}}
    assert validate_counts_page(body) == {date(2022, 9, 12): 5}
    bad = copy.deepcopy(body)
    bad["data"][0]["tweet_count"] = "5"
    with pytest.raises(MalformedResponse, match="tweet_count '5' for 2022-09-12, not a count"):
        validate_counts_page(bad)


def test_guard_stops_a_token_seen_before_pages_adding_nothing_and_too_many_pages():
    guard = PageGuard(WHERE)
    assert guard.next_page(3, "a") == "a"
    assert guard.next_page(3, "b") == "b"
    with pytest.raises(MalformedResponse, match="page 3 returned a next_token seen before"):
        guard.next_page(3, "a")
    idle = PageGuard(WHERE, idle_pages=2)
    idle.next_page(0, "a")
    with pytest.raises(MalformedResponse, match="2 pages in a row added nothing new"):
        idle.next_page(0, "b")
    capped = PageGuard(WHERE, max_pages=2)
    capped.next_page(1, "a")
    with pytest.raises(MalformedResponse, match="2 pages and paging goes on"):
        capped.next_page(1, "b")
    assert PageGuard(WHERE, max_pages=1).next_page(1, None) is None
