"""HTTP transport of the sandbox: bearer auth, rate limits, pay-per-use billing, injected faults.

Speaks to clients exactly like api.x.com does for the endpoints in `api.py`: the real 401 and
429 bodies, `x-rate-limit-*` headers on every answer, and (when asked) the faults a client
meets in production: 429, 500, 503, slow answers, dropped connections, truncated bodies.

The 2026 rules live here too: full-archive search allows one request per second per app (a
429 while `x-rate-limit-remaining` stays above 0; measured between request arrivals), posts
read are billed (the same post in one UTC day once) and counts requests counted, the usage-cap
429 comes after a set number of billed posts, and GET /2/usage/tweets reports the usage.

Besides the faults drawn per request, every misbehaviour a client must survive or refuse is a
fault option: transport ones (a 429 without headers, 402 CreditsDepleted, a body trickling a
byte at a time, HTML, a lone surrogate escape, gzip that does not decompress) and wrong pages
(`misbehave.PAGE_FAULTS`), limited to one path and to the requests after the first `after`.
"""

from __future__ import annotations

import json
import math
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from devkit.sandbox.api import SandboxApi
from devkit.sandbox.misbehave import Misbehaviour

UNAUTHORIZED = {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
TOO_MANY = {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}
USAGE_CAPPED = {"account_id": 1, "product_name": "standard-basic", "title": "UsageCapExceeded", "period": "Monthly",
                "scope": "Product", "detail": "Usage cap exceeded: Monthly product cap",
                "type": "https://api.twitter.com/2/problems/usage-capped"}
SERVER_ERRORS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
# Faults a client recovers from by waiting or retrying: what a fault rate draws from by default.
TRANSIENT_FAULTS = ("429", "500", "502", "503", "504", "slow", "drop", "truncate")
# ... and those that fail a day for good (a proxy's page, bytes no JSON holds, no credits) or that
# only a deadline ends: asked for by name.
FAULTS = (*TRANSIENT_FAULTS, "429-bare", "402", "trickle", "html", "surrogate", "bad-gzip")
CREDITS_DEPLETED = {"title": "CreditsDepleted", "type": "https://api.x.com/2/problems/credits", "status": 402,
                    "detail": "Your enrolled account [1] does not have any credits to fulfill this request."}
PROXY_PAGE = b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>"
# What the real API sends in its api-version header.
API_VERSION = "2.150"
USAGE_PATH = "/2/usage/tweets"
# The per-second rule of full-archive search (seconds at time scale 1).
MIN_INTERVALS = {"/2/tweets/search/all": 1.0}


@dataclass
class RateLimiter:
    """One fixed window per endpoint path, like the real per-app 15-minute windows.

    Real windows reset on whole seconds, as the real epoch-second header says; time-scaled
    windows carry a fractional reset so clients can wait them exactly.
    """

    limit: int
    window: float
    whole_seconds: bool = True
    _state: dict[str, tuple[float, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key: str, spend: bool = True) -> tuple[bool, dict[str, str]]:
        with self._lock:
            now = time.time()
            reset, remaining = self._state.get(key, (0.0, 0))
            if now >= reset:
                reset = math.ceil(now + self.window) if self.whole_seconds else now + self.window
                remaining = self.limit
            allowed = remaining > 0
            if spend:
                remaining = max(0, remaining - 1) if allowed else 0
            self._state[key] = (reset, remaining)
        stamp = str(int(reset)) if reset == int(reset) else f"{reset:.3f}"
        return allowed, {"x-rate-limit-limit": str(self.limit), "x-rate-limit-remaining": str(remaining),
                         "x-rate-limit-reset": stamp}


@dataclass
class Pacer:
    """Minimum seconds between two admitted requests of a path, by arrival (the 1 request/s rule)."""

    intervals: dict[str, float]
    _last: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, path: str) -> bool:
        interval = self.intervals.get(path, 0.0)
        with self._lock:
            now = time.monotonic()
            if interval and now - self._last.get(path, -math.inf) < interval:
                return False
            self._last[path] = now
        return True


@dataclass
class Billing:
    """Pay-per-use counters: every post served as `data` is billed once per UTC day of the read;
    every counts request is counted. `cap`: billed posts after which tweet endpoints answer the usage-cap 429."""

    cap: int | None = None
    posts_billed: int = 0
    posts_served: int = 0
    count_requests: int = 0
    _billed: set[tuple[str, date]] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def capped(self) -> bool:
        return self.cap is not None and self.posts_billed >= self.cap

    def read(self, ids: list[str]) -> None:
        today = datetime.now(UTC).date()
        with self._lock:
            self.posts_served += len(ids)
            before = len(self._billed)
            self._billed.update((post, today) for post in ids)
            self.posts_billed += len(self._billed) - before

    def counted(self) -> None:
        with self._lock:
            self.count_requests += 1

    def usage_body(self) -> dict:
        """GET /2/usage/tweets as the real API shapes it (numbers as strings)."""
        return {"data": {"cap_reset_day": 1, "project_cap": str(self.cap or 0), "project_id": "1",
                         "project_usage": str(self.posts_billed)}}


@dataclass
class Faults:
    """Faults drawn per request from a seeded generator: the same seed, the same faults in order."""

    rate: float = 0.0
    kinds: tuple[str, ...] = TRANSIENT_FAULTS
    seed: int = 0
    slow_seconds: float = 2.0  # a 'slow' answer's delay; a 'trickle' sends one byte per this
    usage_capped: bool = False
    page: str = ""  # one of PAGE_FAULTS: every answer the faults apply to is wrong so
    path: str = ""  # faults apply only to requests whose path holds this ("" = every path)
    after: int = 0  # ... and only after this many such requests were answered well
    _rng: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _matched: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; choose from {', '.join(FAULTS)}")
        self._rng = random.Random(self.seed)
        self.misbehaviour = Misbehaviour(self.page) if self.page else None

    def active(self, path: str) -> bool:
        """Do the faults apply to this (admitted) request: its path matches and `after` came before it."""
        if self.path not in path:
            return False
        with self._lock:
            self._matched += 1
            return self._matched > self.after

    def draw(self) -> str | None:
        with self._lock:
            if self.rate and self._rng.random() < self.rate:
                return self._rng.choice(self.kinds)
        return None


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: SandboxApi, token: str, limiter: RateLimiter, faults: Faults,
                 pacer: Pacer | None = None, billing: Billing | None = None):
        super().__init__(address, Handler)
        self.api, self.token, self.limiter, self.faults = api, token, limiter, faults
        self.pacer, self.billing = pacer or Pacer({}), billing or Billing()
        self.requests_served = 0
        self.paths_served: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.faults_injected: Counter[str] = Counter()

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up (time-outs, dropped connections) is normal here, not an error."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    server: SandboxServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the client logs what matters, and request lines would repeat query strings."""

    def do_GET(self) -> None:
        self.server.requests_served += 1
        url = urlsplit(self.path)
        self.server.paths_served[url.path] += 1
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        if self.headers.get("Authorization", "") != f"Bearer {self.server.token}":
            return self._send(401, UNAUTHORIZED, {})
        if self.server.faults.usage_capped:
            return self._send(429, USAGE_CAPPED, {})
        if url.path == USAGE_PATH:
            return self._send(200, self.server.billing.usage_body(), self.server.limiter.take(url.path)[1])
        if not self.server.pacer.admit(url.path):  # the per-second rule: the window keeps its requests
            return self._send(429, TOO_MANY, self.server.limiter.take(url.path, spend=False)[1])
        allowed, headers = self.server.limiter.take(url.path)
        if not allowed:
            return self._send(429, TOO_MANY, headers)
        if self.server.billing.capped():
            return self._send(429, USAGE_CAPPED, headers)
        faults = self.server.faults
        active = faults.active(url.path)
        fault = faults.draw() if active else None
        if fault:
            self.server.faults_injected[fault] += 1
        if fault in ("429-bare", "402", "html", "bad-gzip"):
            return self._transport_fault(fault, headers)
        if fault == "drop":
            self.close_connection = True
            self.connection.close()
            return None
        if fault == "429":
            return self._send(429, TOO_MANY, {**headers, "x-rate-limit-remaining": "0",
                                              "x-rate-limit-reset": str(int(time.time()) + 1)})
        if fault and fault.isdigit():
            status = int(fault)
            return self._send(status, {"title": SERVER_ERRORS[status], "status": status, "type": "about:blank",
                                       "detail": SERVER_ERRORS[status]}, headers)
        if fault == "slow":
            time.sleep(self.server.faults.slow_seconds)
        wrong = faults.misbehaviour
        params = wrong.request(params) if wrong else params  # an invented token stands for a real one
        status, body = self.server.api.handle(url.path, params)
        if status == 200 and wrong and active:
            self.server.faults_injected[wrong.kind] += 1
            body = wrong.answer(body, params, "/counts/" in url.path)
        elif status == 200 and wrong:
            wrong.remember(body)
        if status == 200 and "/counts/" in url.path:
            self.server.billing.counted()
        elif status == 200 and "/tweets/search/" in url.path:  # posts read are billed; compliance jobs are not
            self.server.billing.read([t["id"] for t in body.get("data", ()) if isinstance(t, dict)])
        return self._send(status, body, headers, truncate=fault == "truncate", surrogate=fault == "surrogate",
                          trickle=faults.slow_seconds if fault == "trickle" else 0.0)

    def _transport_fault(self, fault: str, headers: dict[str, str]) -> None:
        """An answer that goes wrong before any page: the status or the bytes themselves."""
        if fault == "429-bare":
            return self._send(429, TOO_MANY, {})
        if fault == "402":
            return self._send(402, CREDITS_DEPLETED, headers)
        if fault == "html":
            return self._write(200, PROXY_PAGE, "text/html; charset=utf-8", headers)
        return self._write(200, b"\x1f\x8b\x08\x00not gzip at all", "application/json; charset=utf-8",
                           {**headers, "Content-Encoding": "gzip"})

    def _send(self, status: int, body: dict, headers: dict[str, str], truncate: bool = False, surrogate: bool = False,
              trickle: float = 0.0) -> None:
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        if truncate:
            payload = payload[: max(1, len(payload) // 2)]
        if surrogate:  # a lone high surrogate, which no UTF-8 text can hold
            payload = payload.replace(b'"text":"', b'"text":"\\ud800', 1)
        self._write(status, payload, "application/json; charset=utf-8", headers, trickle)

    def _write(self, status: int, payload: bytes, content_type: str, headers: dict[str, str], trickle: float = 0.0) -> None:
        self.server.statuses[status] += 1
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("api-version", API_VERSION)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not trickle:
            self.wfile.write(payload)
            return
        for byte in range(len(payload)):  # a byte at a time: an idle timeout never fires
            self.wfile.write(payload[byte:byte + 1])
            self.wfile.flush()
            time.sleep(trickle)
