"""The X API v2 search and counts endpoints as pure functions of a request.

`SandboxApi.handle(path, params, now)` returns `(status, body)` exactly as the real API would
shape them, so the HTTP server only adds transport concerns (auth, rate limits, faults, cost).
Paths: /2/tweets/search/recent|all and /2/tweets/counts/recent|all.

With `modern` (the default) the answers follow the API as it is in 2026: long posts and edit
chains in the corpus, no retweets in search results for days from 2026-05-04 (filtered after
paging, so a page can be empty and still carry a `next_token`), and at most 100 results per
full-archive page when `context_annotations` is requested.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from devkit.sandbox.generator import days_between, generate_day

SEARCH_LIMITS = {"recent": (10, 100), "all": (10, 500)}
ARCHIVE_START = datetime(2006, 3, 21, tzinfo=UTC)
RECENT_DAYS = 7
DEFAULT_TWEET_FIELDS = ("id", "text", "edit_history_tweet_ids")
DEFAULT_USER_FIELDS = ("id", "name", "username")
INVALID_REQUEST = "https://api.twitter.com/2/problems/invalid-request"
# Since this day keyword and hashtag searches return no retweets.
NO_RETWEETS_SINCE = date(2026, 5, 4)
NO_RETWEETS_SINCE_STAMP = NO_RETWEETS_SINCE.isoformat()
# A counts page covers at most 31 days of buckets; longer ranges page with next_token.
COUNTS_PAGE_DAYS = 31
USER_EXPANSIONS = ("author_id", "in_reply_to_user_id", "entities.mentions.username", "referenced_tweets.id.author_id")


class BadRequest(Exception):
    """A parameter the real API would reject with its 400 body."""

    def __init__(self, name: str, value: str, message: str, also: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.body = {"errors": [{"parameters": {**(also or {}), name: [value]}, "message": message}],
                     "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
                     "type": INVALID_REQUEST}


def parse_time(name: str, value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(name, value, f"Invalid '{name}':'{value}'. '{name}' must be a valid RFC 3339 timestamp") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def fmt_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def match_query(query: str) -> Callable[[dict], bool]:
    """A small subset of the search syntax: AND of terms, `-` negation, is:retweet|reply|quote, lang:xx."""
    tests = []
    for term in query.replace("(", " ").replace(")", " ").split():
        negate = term.startswith("-")
        term = term.lstrip("-").lower()
        if term.startswith("is:"):
            kind = {"retweet": "retweeted", "reply": "replied_to", "quote": "quoted"}.get(term[3:], term[3:])
            test = (lambda k: lambda t: any(r["type"] == k for r in t.get("referenced_tweets", ())))(kind)
        elif term.startswith("lang:"):
            test = (lambda lang: lambda t: t.get("lang") == lang)(term[5:])
        else:
            test = (lambda w: lambda t: w in t["text"].lower())(term)
        tests.append((lambda f, n: lambda t: f(t) != n)(test, negate))
    return lambda tweet: all(test(tweet) for test in tests)


def _token(key: str, offset: int) -> str:
    raw = f"{hashlib.sha1(key.encode()).hexdigest()[:10]}:{offset}".encode()
    return base64.b32encode(raw).decode().rstrip("=").lower()


def _offset(key: str, params: dict[str, str]) -> int:
    """Where a paging run resumes: `next_token` or its synonym `pagination_token` (0 without either)."""
    name = "next_token" if "next_token" in params else "pagination_token"
    if name not in params:
        return 0
    token = params[name]
    try:
        prefix, offset = base64.b32decode(token.upper() + "=" * (-len(token) % 8)).decode().split(":")
        if prefix == hashlib.sha1(key.encode()).hexdigest()[:10]:
            return int(offset)
    except (ValueError, UnicodeDecodeError):
        pass
    raise BadRequest(name, token, f"The `{name}` query parameter value [{token}] is not valid")


def _retweet(tweet: dict) -> bool:
    return any(r["type"] == "retweeted" for r in tweet.get("referenced_tweets", ()))


def _fields(params: dict, name: str, default: Iterable[str]) -> set[str]:
    return set(default) | {f for f in params.get(name, "").split(",") if f}


def _trim(obj: dict, fields: set[str]) -> dict:
    return {k: v for k, v in obj.items() if k in fields and v is not None}


@dataclass
class Corpus:
    """Where tweets come from: the generator (default) or recorded pages (replay)."""

    volume: int = 300
    seed: int = 0
    replay_pages: list[dict] = field(default_factory=list)
    modern: bool = True

    def tweets(self, start: datetime, end: datetime) -> tuple[list[dict], dict[str, dict], dict[str, dict]]:
        """Tweets in [start, end) newest first, plus referenced tweets and users by id."""
        lo, hi = fmt_time(start), fmt_time(end)
        tweets: list[dict] = []
        referenced: dict[str, dict] = {}
        users: dict[str, dict] = {}
        # The day before may have edits made after its midnight (modern corpus only).
        for day in days_between(start - timedelta(days=1) if self.modern else start, end):
            generated = generate_day(day, self.volume, self.seed, self.modern)
            tweets.extend(t for t in generated.tweets + generated.spill if lo <= t["created_at"] < hi)
            referenced.update(generated.referenced)
            users = generated.users
        tweets.sort(key=lambda t: int(t["id"]), reverse=True)
        return tweets, referenced, users


@dataclass
class SandboxApi:
    corpus: Corpus
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    modern: bool = True
    _matches: dict[tuple, tuple[list[dict], dict, dict]] = field(default_factory=dict, repr=False)

    def handle(self, path: str, params: dict[str, str]) -> tuple[int, dict]:
        parts = path.rstrip("/").split("/")
        if len(parts) != 5 or parts[:3] != ["", "2", "tweets"] or parts[3] not in ("search", "counts") \
                or parts[4] not in ("recent", "all"):
            return 404, {"errors": [{"message": "Sorry, that page does not exist", "code": 34}]}
        try:
            if "query" not in params:
                raise BadRequest("query", "", "The `query` query parameter can not be empty")
            start, end = self._window(parts[4], params)
            if parts[3] == "counts":
                return 200, self._counts(params, start, end)
            return 200, self._search(parts[4], params, start, end)
        except BadRequest as exc:
            return 400, exc.body

    def _window(self, endpoint: str, params: dict[str, str]) -> tuple[datetime, datetime]:
        now = self.clock()
        latest = now - timedelta(seconds=10)
        earliest = now - timedelta(days=RECENT_DAYS) if endpoint == "recent" else ARCHIVE_START
        end = parse_time("end_time", params["end_time"]) if "end_time" in params else latest
        start = parse_time("start_time", params["start_time"]) if "start_time" in params else \
            max(earliest, end - timedelta(days=RECENT_DAYS if endpoint == "recent" else 30))
        if start < earliest:
            raise BadRequest("start_time", params["start_time"],
                             f"Invalid 'start_time':'{params['start_time']}'. 'start_time' must be on or after {fmt_time(earliest)[:16]}Z")
        if end > latest:
            raise BadRequest("end_time", params["end_time"],
                             f"Invalid 'end_time':'{params['end_time']}'. 'end_time' must be a minimum of 10 seconds prior to the request time.")
        if start >= end:
            raise BadRequest("start_time", params.get("start_time", ""),
                             f"Invalid 'start_time':'{params.get('start_time', '')}'. 'end_time' must be after 'start_time'.")
        return start, end

    def _matching(self, params: dict[str, str], start: datetime, end: datetime) -> tuple[list[dict], dict, dict]:
        """Matches of a query and window, remembered: every page of a paging run asks again."""
        key = (params["query"], start, end)
        found = self._matches.get(key)
        if found is None:
            tweets, referenced, users = self.corpus.tweets(start, end)
            matches = match_query(params["query"])
            found = [t for t in tweets if matches(t)], referenced, users
            if len(self._matches) >= 16:
                self._matches.pop(next(iter(self._matches)))
            self._matches[key] = found
        return found

    def _hidden(self, tweet: dict) -> bool:
        """A retweet from 2026-05-04 on: search no longer returns it."""
        return self.modern and tweet["created_at"] >= NO_RETWEETS_SINCE_STAMP and _retweet(tweet)

    def _search(self, endpoint: str, params: dict[str, str], start: datetime, end: datetime) -> dict:
        low, high = SEARCH_LIMITS[endpoint]
        raw_max = params.get("max_results", str(low))
        if not raw_max.isdigit() or not low <= int(raw_max) <= high:
            raise BadRequest("max_results", raw_max,
                             f"The `max_results` query parameter value [{raw_max}] is not between {low} and {high}")
        fields = params.get("tweet.fields", "")
        if self.modern and endpoint == "all" and int(raw_max) > 100 and "context_annotations" in fields.split(","):
            raise BadRequest("max_results", raw_max,
                             "when requesting `tweet.fields=context_annotations` `max_results` must be less than or equal to `100`",
                             also={"tweet.fields": ["context_annotations"]})
        key = f"{endpoint}|{params['query']}|{start}|{end}"
        offset = _offset(key, params)
        if self.corpus.replay_pages:
            return self._replay_page(key, offset, start, end)
        tweets, referenced, users = self._matching(params, start, end)
        cut = tweets[offset:offset + int(raw_max)]
        page = [t for t in cut if not self._hidden(t)]  # filtered after paging, as the API does
        body: dict = {}
        if page:
            body["data"] = [_trim(t, _fields(params, "tweet.fields", DEFAULT_TWEET_FIELDS)) for t in page]
            includes = self._includes(page, params, referenced, users)
            if includes:
                body["includes"] = includes
            body["meta"] = {"newest_id": page[0]["id"], "oldest_id": page[-1]["id"], "result_count": len(page)}
        else:
            body["meta"] = {"result_count": 0}
        if offset + len(cut) < len(tweets):
            body["meta"]["next_token"] = _token(key, offset + len(cut))
        return body

    def _includes(self, page: list[dict], params: dict[str, str], referenced: dict, users: dict) -> dict:
        expansions = set(params.get("expansions", "").split(","))
        user_fields = _fields(params, "user.fields", DEFAULT_USER_FIELDS)
        tweet_fields = _fields(params, "tweet.fields", DEFAULT_TWEET_FIELDS)
        ref_tweets = [referenced[r["id"]] for t in page for r in t.get("referenced_tweets", ())
                      if "referenced_tweets.id" in expansions and r["id"] in referenced]
        user_ids: dict[str, None] = {}
        for tweet in page:
            if "author_id" in expansions:
                user_ids[tweet["author_id"]] = None
            if "in_reply_to_user_id" in expansions and "in_reply_to_user_id" in tweet:
                user_ids[tweet["in_reply_to_user_id"]] = None
            if "entities.mentions.username" in expansions:
                user_ids.update((m["id"], None) for m in tweet.get("entities", {}).get("mentions", ()))
        if "referenced_tweets.id.author_id" in expansions:
            user_ids.update((t["author_id"], None) for t in ref_tweets)
        includes: dict = {}
        if user_ids:
            includes["users"] = [_trim(users[u], user_fields) for u in user_ids if u in users]
        if ref_tweets:
            includes["tweets"] = [_trim(t, tweet_fields) for t in {t["id"]: t for t in ref_tweets}.values()]
        return includes

    def _replay_page(self, key: str, offset: int, start: datetime, end: datetime) -> dict:
        """Recorded pages in file order, each cut to the window; pages left empty are skipped."""
        lo, hi = fmt_time(start), fmt_time(end)
        served = []
        for recorded in self.corpus.replay_pages:
            data = [t for t in recorded.get("data", ()) if lo <= _norm(t["created_at"]) < hi]
            if data:
                served.append((recorded, data))
        if offset >= len(served):
            return {"meta": {"result_count": 0}}
        recorded, data = served[offset]
        body = {"data": data}
        for extra in ("includes", "errors"):
            if extra in recorded:
                body[extra] = recorded[extra]
        body["meta"] = {"newest_id": data[0]["id"], "oldest_id": data[-1]["id"], "result_count": len(data)}
        if offset + 1 < len(served):
            body["meta"]["next_token"] = _token(key, offset + 1)
        return body

    def _counts(self, params: dict[str, str], start: datetime, end: datetime) -> dict:
        granularity = params.get("granularity", "hour")
        steps = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
        if granularity not in steps:
            raise BadRequest("granularity", granularity,
                             f"The `granularity` query parameter value [{granularity}] is not one of [minute,hour,day]")
        if self.corpus.replay_pages:
            lo, hi = fmt_time(start), fmt_time(end)
            stamps = sorted(_norm(t["created_at"]) for p in self.corpus.replay_pages for t in p.get("data", ())
                            if lo <= _norm(t["created_at"]) < hi)
        else:
            stamps = sorted(t["created_at"] for t in self._matching(params, start, end)[0] if not self._hidden(t))
        step = steps[granularity]
        floor = start.replace(minute=0, second=0, microsecond=0) if granularity != "minute" else start.replace(second=0, microsecond=0)
        if granularity == "day":
            floor = floor.replace(hour=0)
        buckets, bucket_start = [], start
        edge = floor + step
        while bucket_start < end:
            bucket_end = min(edge, end)
            lo, hi = fmt_time(bucket_start), fmt_time(bucket_end)
            buckets.append({"end": hi, "start": lo, "tweet_count": sum(1 for s in stamps if lo <= s < hi)})
            bucket_start, edge = bucket_end, edge + step
        key = f"counts|{params['query']}|{start}|{end}|{granularity}"
        offset, size = _offset(key, params), COUNTS_PAGE_DAYS * (timedelta(days=1) // step)
        page = buckets[offset:offset + size]
        body = {"data": page, "meta": {"total_tweet_count": sum(b["tweet_count"] for b in page)}}
        if offset + size < len(buckets):
            body["meta"]["next_token"] = _token(key, offset + size)
        return body


_MILLIS = re.compile(r"\.\d{3}Z$")


def _norm(stamp: str) -> str:
    """Recorded stamps are already `...000Z`; keep one format so string comparison orders them."""
    return stamp if _MILLIS.search(stamp) else stamp.replace("Z", ".000Z")
