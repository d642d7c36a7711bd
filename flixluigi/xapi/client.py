"""X API v2 client: day windows, paging, pacing, rate limits and retries. Knows nothing of Luigi.

Every failure surfaces as an `XApiError` (`flixluigi.errors`) whose message is one line naming
the problem and the fix, and whose class says (`transient`) whether a later retry can help.
Transient faults are retried per page, resuming from the last good `next_token`, so a fault never
restarts the day nor stores a page twice. A client has one retry budget (`max_tries` a page,
`retry_budget` in all): once spent, the failure is final for the run (`RetriesExhausted`), so
retries never nest inside the day's own tries. Every page is validated as it arrives
(`xapi.pages`), paging that would not end is stopped, every request has a deadline for its
whole body, and a fetch has one (`deadline`) that leaves out the waits the API announced.

Pacing follows the API as it is in 2026: full-archive search allows one request per second
per app on top of its 15-minute window, and that rule is not in the headers. The client keeps
a minimum interval per endpoint path, measured from the previous answer (so two requests
never arrive closer than the interval, whatever the network does), and waits it before its
first request too, since another process of the same app may just have made one.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import backoff
import orjson
import requests
import urllib3

from flixluigi.dates import day_range
from flixluigi.errors import (
    ApiUnreachable,
    CreditsDepleted,
    DayNotServable,
    FetchDeadline,
    InvalidRequest,
    MalformedResponse,
    RateLimited,
    RetriesExhausted,
    TransientFault,
    Unauthorized,
    UsageCapped,
    XApiError,
)
from flixluigi.xapi.pages import PageGuard, decode, validate_counts_page, validate_page

log = logging.getLogger(__name__)

RECENT_WINDOW = timedelta(days=7)
# A day is fetched over minutes; keep this far from the edge of the recent window.
RECENT_MARGIN = timedelta(minutes=30)
ARCHIVE_START = date(2006, 3, 21)
# The API refuses an end_time less than 10 s before the request.
SETTLE = timedelta(seconds=10)
# Wake just after the reset; if our clock runs ahead of the API's, the 429 path waits again.
RESET_MARGIN = 0.1
RETRYABLE_STATUS = {500, 502, 503, 504}
USAGE_PATH = "/2/usage/tweets"
# The 1 request/s rule of full-archive search; recent search has none.
DEFAULT_MIN_INTERVAL = {"/2/tweets/search/all": 1.0}
# After a 429 that is not a spent window, on a path without an interval of its own.
BURST_WAIT = 1.0
# A 429 without x-rate-limit-* headers: wait backoff_factor * 2**n seconds (n: such 429s so far), at most this.
HEADERLESS_WAIT_MAX = 60.0
# Bytes read at a time from an answer's body, with the request's deadline checked between reads.
CHUNK_BYTES = 1 << 16
# One counts request covers at most this many days with granularity=day.
COUNTS_SPAN_DAYS = 31
# Full-archive pages with context_annotations requested hold at most 100 posts (500 without).
ANNOTATED_MAX_RESULTS = 100


def search_path(endpoint: str) -> str:
    return f"/2/tweets/search/{endpoint}"


def counts_path(endpoint: str) -> str:
    return f"/2/tweets/counts/{endpoint}"


def search_limits(endpoint: str, tweet_fields: str = "") -> tuple[int, int]:
    """The max_results range search allows: 10..100 recent, 10..500 full archive, 10..100 there with context_annotations."""
    if endpoint == "all" and "context_annotations" not in tweet_fields.split(","):
        return 10, 500
    return 10, ANNOTATED_MAX_RESULTS


def request_failure(exc: requests.exceptions.RequestException, where: str, timeout: float, *, first: bool, prefix: str = "",
                    unreachable: type[XApiError] = ApiUnreachable, fault: type[XApiError] = TransientFault) -> XApiError:
    """A request that got no HTTP answer, in one line: refused on the first try means nothing listens
    there (permanent), anything else is worth another try."""
    if isinstance(exc, requests.exceptions.ConnectionError) and first and "Connection refused" in str(exc):
        return unreachable(f"{prefix}X API at {where} refuses connections; start it (the sandbox: scripts/sandbox.sh "
                           "start) or fix [xapi] base_url")
    if isinstance(exc, requests.exceptions.Timeout):
        return fault(f"{prefix}no answer from {where} within {timeout:g}s")
    return fault(f"{prefix}request to {where} failed ({type(exc).__name__})")


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def params(self) -> dict[str, str]:
        return {"start_time": _rfc3339(self.start), "end_time": _rfc3339(self.end)}


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def day_window(day: date, endpoint: str, now: datetime | None = None) -> Window:
    """[day 00:00Z, day+1 00:00Z), refused before any call if the endpoint cannot serve it whole."""
    now = now or datetime.now(UTC)
    start = midnight(day)
    end = start + timedelta(days=1)
    if end > now - SETTLE:
        raise DayNotServable(f"{day} has not ended yet in UTC; a partial day is never stored: run it after "
                             f"{_rfc3339(end + SETTLE)}", hint=f"run {day} after {_rfc3339(end + SETTLE)}, or give a day that has ended")
    if endpoint == "recent" and start < now - RECENT_WINDOW + RECENT_MARGIN:
        raise DayNotServable(f"{day} is outside the recent-search window (last 7 days); set [xapi] endpoint = all "
                             "(full-archive search) to fetch it",
                             hint="set [xapi] endpoint = all (full-archive access), or give a day of the last 7")
    if endpoint == "all" and day < ARCHIVE_START:
        raise DayNotServable(f"{day} is before the first tweet ({ARCHIVE_START}); choose a later date",
                             hint=f"give a day from {ARCHIVE_START} on")
    return Window(start, end)


def servable(day: date, endpoint: str) -> str | None:
    """Why the endpoint cannot serve the day whole now (the refusal of `day_window`), or None."""
    try:
        day_window(day, endpoint)
    except XApiError as exc:
        return str(exc)
    return None


def reconcile(expected: int, fetched: int, tolerance: float) -> str | None:
    """A one-line warning when a fetch differs from the API's count by more than `tolerance` (a share)."""
    if abs(expected - fetched) <= tolerance * max(expected, 1):
        return None
    return (f"fetched {fetched} tweets but the counts endpoint expects {expected} "
            f"({fetched - expected:+d}, more than {tolerance:.1%}); re-run the day with RawTweets once the API settles")


def _read_body(response: requests.Response, ends: float) -> bytes:
    """The whole (decoded) body, read as it arrives and given up at `ends` (monotonic), in
    `requests`' own exceptions. `read1` returns what one read got, so a trickle cannot block it."""
    chunks = []
    while chunk := _read_chunk(response):
        chunks.append(chunk)
        if time.monotonic() > ends:
            raise requests.exceptions.Timeout("the body did not complete in time")
    return b"".join(chunks)


def _read_chunk(response: requests.Response) -> bytes:
    try:
        return response.raw.read1(CHUNK_BYTES, decode_content=True)
    except urllib3.exceptions.DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from None
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.exceptions.ReadTimeout(exc) from None
    except (urllib3.exceptions.ProtocolError, OSError) as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from None


@dataclass
class Page:
    """One API response and how it was obtained (in the spirit of twarc's `__twarc` key)."""

    body: dict
    request: dict


@dataclass
class FetchStats:
    """What one client did; `posts_read` and `requests` are what pay-per-use bills."""

    pages: int = 0
    tweets: int = 0
    posts_read: int = 0  # distinct posts received as `data`: a post read twice in one UTC day is billed once
    requests: Counter[str] = field(default_factory=Counter)  # HTTP requests sent, by endpoint path
    partial_errors: int = 0
    retries: int = 0
    throttled: int = 0  # 429s met, except the usage cap (which fails at once)
    rate_limit_waits: int = 0
    rate_limit_wait_seconds: float = 0.0


def problem_of(body: object, status: int) -> str:
    """The API's own title/detail/errors[].message, on one line."""
    if not isinstance(body, dict):
        return f"HTTP {status}"
    parts = [str(body[k]) for k in ("title", "detail") if body.get(k)]
    parts += [str(e.get("message")) for e in body.get("errors", ()) if isinstance(e, dict) and e.get("message")]
    return " - ".join(dict.fromkeys(parts)).replace("\n", " ") or f"HTTP {status}"


def _usage_capped(body: object) -> bool:
    """The usage-cap 429 arrives with thousands of requests left: only its problem type tells it apart."""
    return isinstance(body, dict) and ("usage-capped" in str(body.get("type", "")) or body.get("title") == "UsageCapExceeded")


def wait_for_reset(path: str, reset: float, max_wait: float, on_status: Callable[[str], None],
                   error: type[XApiError] = RateLimited) -> float:
    """Sleep until the rate-limit window of `path` resets at `reset` (epoch seconds, just after);
    returns the seconds waited. A reset further away than `max_wait` raises `error` instead."""
    wait = reset + RESET_MARGIN - time.time()
    if wait <= 0:
        return 0.0
    if wait > max_wait:
        raise error(f"rate limit of {path} resets in {wait:.0f}s, more than [xapi] max_rate_limit_wait = {max_wait:.0f}s; "
                    "raise it or run later")
    resume = datetime.fromtimestamp(reset, UTC).strftime("%H:%M:%SZ")
    on_status(f"rate limited, resuming at {resume}")
    log.info("X API: rate limit of %s spent, resuming at %s", path, resume)
    time.sleep(wait)
    return wait


@dataclass
class XClient:
    base_url: str
    token: str = field(repr=False)
    timeout: float = 30.0
    max_tries: int = 8
    retry_budget: int = 24  # retries of all the client's requests together (one day's fetch)
    deadline: float | None = None  # seconds the client may work, the API's announced waits left out
    idle_pages: int = 20  # search pages in a row without a new post before paging is stopped
    max_rate_limit_wait: float = 960.0
    backoff_factor: float = 1.0
    on_status: Callable[[str], None] = lambda message: None
    session: requests.Session = field(default_factory=requests.Session, repr=False)
    stats: FetchStats = field(default_factory=FetchStats)
    # Seconds between the answer to one request of a path and the next request to it.
    min_interval: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIN_INTERVAL))
    _limits: dict[str, tuple[int, float]] = field(default_factory=dict, repr=False)
    _ready: dict[str, float] = field(default_factory=dict, repr=False)  # path -> monotonic time of its next request
    _read: set[str] = field(default_factory=set, repr=False)
    _started: float = field(default=0.0, repr=False)
    api_version: str | None = None  # the api-version header of the last answer that had one

    def __post_init__(self) -> None:
        if not self.token:
            raise Unauthorized("no bearer token: export it in the variable named by [xapi] token_env (X_BEARER_TOKEN)")
        self.base_url = self.base_url.rstrip("/")
        self.session.headers.update({"Authorization": f"Bearer {self.token}", "User-Agent": "flixluigi"})
        self._get = backoff.on_exception(
            backoff.expo, TransientFault, max_tries=self.max_tries, factor=self.backoff_factor, max_value=60,
            jitter=backoff.full_jitter, on_backoff=self._on_backoff, giveup=self._give_up, giveup_log_level=logging.DEBUG,
            logger=None,
        )(self._attempt)

    def search(self, query: str, window: Window, *, endpoint: str = "all", max_results: int = 100,
               fields: dict[str, str] | None = None, max_pages: int | None = None) -> Iterator[Page]:
        """Every page of the window, oldest request first, until `next_token` is absent.

        A page without `data` may still carry a `next_token` (the API filters after paging),
        so only the token ends the run. Each page is validated before it is yielded; a token
        seen before, `idle_pages` pages in a row without a new post, or `max_pages` pages stop
        the run with `MalformedResponse` (the posts already read stay counted as billed).
        """
        path = search_path(endpoint)
        params = {"query": query, **window.params(), "max_results": str(max_results), **(fields or {})}
        asked = (fields or {}).get("tweet.fields", "").split(",")
        guard, first = PageGuard(path, max_pages, self.idle_pages), True
        while True:
            page = self._page(path, params)
            body = page.body
            new = self._billed(body)
            try:
                ids = validate_page(body, window, fields=asked, first=first, where=path)
            except MalformedResponse as exc:
                exc.page = {**body, "__flixluigi": page.request} if isinstance(body, dict) else None
                raise
            first = first and not ids
            self.stats.pages += 1
            self.stats.tweets += len(ids)
            self.stats.partial_errors += len(body.get("errors", ()))
            yield page
            token = guard.next_page(new, body["meta"].get("next_token"))
            if not token:
                return
            params = {**params, "next_token": token}

    def _billed(self, body: dict) -> int:
        """Count the page's posts as read (billed, whatever validation finds); how many are new to this client."""
        data = body.get("data")
        before = len(self._read)
        if isinstance(data, list):
            self._read.update(str(t.get("id")) for t in data if isinstance(t, dict))
        self.stats.posts_read = len(self._read)
        return len(self._read) - before

    def daily_counts(self, query: str, start_day: date, end_day: date, *, endpoint: str = "all") -> dict[date, int]:
        """Posts per UTC day from start_day to end_day (inclusive), as the counts endpoint expects them.

        One request (granularity=day) per span of up to 31 days, plus its pages if the API pages;
        a counts request reads no post, so an estimate costs counts requests only.
        """
        if end_day < start_day:
            raise InvalidRequest(f"end day {end_day} is before start day {start_day}; swap them")
        day_window(start_day, endpoint)  # both ends must be servable whole: the same one-line refusals
        day_window(end_day, endpoint)
        found: dict[date, int] = {}
        path, first = counts_path(endpoint), start_day
        while first <= end_day:
            last = min(end_day, first + timedelta(days=COUNTS_SPAN_DAYS - 1))
            params = {"query": query, **Window(midnight(first), midnight(last + timedelta(days=1))).params(),
                      "granularity": "day"}
            # Each page adds at least one day bucket: more pages than days, or one adding no day, never ends.
            guard, token = PageGuard(path, (last - first).days + 2, idle_pages=1), ""
            while token is not None:
                body = self._page(path, params).body
                buckets = validate_counts_page(body, path)
                fresh = set(buckets) - set(found)
                for day, posts in buckets.items():
                    found[day] = found.get(day, 0) + posts
                token = guard.next_page(len(fresh), body.get("meta", {}).get("next_token"))
                params = {**params, "next_token": token or ""}
            first = last + timedelta(days=1)
        return {day: found.get(day, 0) for day in day_range(start_day, end_day)}

    def usage(self) -> int:
        """Posts read in the current billing period, from GET /2/usage/tweets (project_usage)."""
        body = self._page(USAGE_PATH, {}).body
        try:
            return int(body["data"]["project_usage"])
        except (KeyError, TypeError, ValueError):
            raise MalformedResponse(f"usage answer without data.project_usage from {self.base_url}") from None

    def check(self, query: str, *, endpoint: str = "all") -> None:
        """One counts request that proves the API answers and accepts the token; it reads no post."""
        now = datetime.now(UTC) - SETTLE - timedelta(seconds=1)
        self._page(counts_path(endpoint), {"query": query, "granularity": "hour",
                                           **Window(now - timedelta(minutes=5), now).params()})

    def _page(self, path: str, params: dict[str, str]) -> Page:
        attempts: list = [0, None]  # tries, the api-version header of the answer
        try:
            body, status = self._get(path, params, attempts)
        except TransientFault as exc:  # the client's retries are the day's: none are left for the run
            raise RetriesExhausted(f"{exc} (gave up after {self.stats.retries} retries, [xapi] max_tries = "
                                   f"{self.max_tries}, retry_budget = {self.retry_budget})") from None
        self.api_version = attempts[1] or self.api_version
        request = {"url": self.base_url + path, "params": params, "retrieved_at": datetime.now(UTC).isoformat(),
                   "attempts": attempts[0], "status": status, "api_version": attempts[1]}
        return Page(body, request)

    def _give_up(self, exc: Exception) -> bool:
        """The client's retry budget is spent (the per-page bound is backoff's max_tries)."""
        return self.stats.retries >= self.retry_budget

    def _on_backoff(self, details: dict) -> None:
        self.stats.retries += 1
        log.warning("X API: %s; retry %d in %.1fs", details["exception"], details["tries"], details["wait"])

    def _wait_for_reset(self, path: str, reset: float) -> None:
        waited = wait_for_reset(path, reset, self.max_rate_limit_wait, self.on_status)
        if waited:
            self.stats.rate_limit_waits += 1
            self.stats.rate_limit_wait_seconds += waited

    def _pace(self, path: str) -> None:
        """Wait until the path's interval has passed since its last answer (or since the client began)."""
        now = time.monotonic()
        ready = self._ready.setdefault(path, now + self.min_interval.get(path, 0.0))
        if ready > now:
            time.sleep(ready - now)

    def _answered(self, path: str, wait: float = 0.0) -> None:
        self._ready[path] = time.monotonic() + max(self.min_interval.get(path, 0.0), wait)

    def _send(self, path: str, params: dict[str, str]) -> requests.Response:
        """One request whose connect and whole body take at most `timeout` seconds: `requests`
        has only an idle timeout, which a body trickling a byte at a time restarts forever."""
        self._pace(path)
        self._check_deadline(path)
        self.stats.requests[path] += 1
        ends = time.monotonic() + self.timeout
        try:
            with self.session.get(self.base_url + path, params=params, timeout=self.timeout, stream=True) as response:
                response._content = _read_body(response, ends)
                return response
        finally:
            self._answered(path)

    def _check_deadline(self, path: str) -> None:
        """The fetch's own time (announced rate-limit waits left out) is within `deadline`."""
        self._started = self._started or time.monotonic()
        busy = time.monotonic() - self._started - self.stats.rate_limit_wait_seconds
        if self.deadline is not None and busy > self.deadline:
            raise FetchDeadline(f"{path}: the fetch took {busy:.0f}s besides the API's announced waits, past its deadline "
                                f"of {self.deadline:.0f}s ([xapi] deadline_base, deadline_per_page); stopped")

    def _attempt(self, path: str, params: dict[str, str], attempts: list[int]) -> tuple[dict, int]:
        limited = 0
        while True:
            remaining, reset = self._limits.get(path, (1, 0.0))
            if remaining <= 0:
                self._wait_for_reset(path, reset)
            attempts[0] += 1
            try:
                response = self._send(path, params)
            except requests.exceptions.ContentDecodingError:
                raise MalformedResponse(f"{path}: the API's body does not decompress (Content-Encoding "
                                        "gzip); a retry gets the same: a proxy in between?") from None
            except requests.exceptions.RequestException as exc:
                raise request_failure(exc, self.base_url, self.timeout, first=attempts[0] == 1) from None
            self._note_limits(path, response)
            status = response.status_code
            attempts[1] = response.headers.get("api-version")
            if status == 200:
                body = decode(response.content, response.headers.get("Content-Type", ""), path)
                if not isinstance(body, dict):
                    raise MalformedResponse(f"{path} answered with JSON that is not an object; is [xapi] base_url an X API?")
                return body, status
            try:
                body = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                body = None
            if status == 402:
                raise CreditsDepleted(f"X API credits depleted (HTTP 402: {problem_of(body, status)}); waiting never "
                                      "clears it: buy credits for the app's account, then rerun")
            if status == 429:
                if _usage_capped(body):  # first: the cap arrives while the window still has requests left
                    raise UsageCapped(f"X API usage cap reached ({problem_of(body, status)}); wait for the next "
                                      "billing period or raise the plan's cap")
                self.stats.throttled += 1
                limited += 1
                if limited > self.max_tries:
                    raise RateLimited(f"{path} still rate limited after {self.max_tries} waits; run later")
                if path not in self._limits:  # no x-rate-limit-* headers: a bounded wait that grows
                    wait = min(self.backoff_factor * 2 ** (limited - 1), HEADERLESS_WAIT_MAX, self.max_rate_limit_wait)
                    log.info("X API: 429 on %s without rate-limit headers; waiting %.1fs", path, wait)
                    self._answered(path, wait)
                elif self._limits[path][0] > 0:  # the per-second rule or a burst, not a spent window
                    log.info("X API: 429 on %s with requests left in the window; waiting the interval", path)
                    self._answered(path, self.min_interval.get(path) or BURST_WAIT)
                continue
            if status in RETRYABLE_STATUS:
                raise TransientFault(f"HTTP {status} from {path}: {problem_of(body, status)}")
            if status in (401, 403):
                raise Unauthorized(f"X API rejected the bearer token (HTTP {status}: {problem_of(body, status)}); "
                                   "check the variable named by [xapi] token_env")
            if status == 400:
                raise InvalidRequest(f"X API refused the request (HTTP 400: {problem_of(body, status)})")
            if 400 <= status < 500:  # never retried: the same request would get the same answer
                raise InvalidRequest(f"unexpected HTTP {status} from {self.base_url}{path}: {problem_of(body, status)}")
            raise XApiError(f"unexpected HTTP {status} from {self.base_url}{path}: {problem_of(body, status)}")

    def _note_limits(self, path: str, response: requests.Response) -> None:
        """The window's state from the headers; an answer without them leaves the path unknown."""
        try:
            remaining = int(response.headers["x-rate-limit-remaining"])
            reset = float(response.headers["x-rate-limit-reset"])
        except (KeyError, ValueError):
            self._limits.pop(path, None)
            return
        self._limits[path] = (remaining, reset)
