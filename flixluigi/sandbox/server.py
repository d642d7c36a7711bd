"""HTTP transport of the sandbox: bearer auth, rate-limit headers, injected faults.

Speaks to clients exactly like api.twitter.com does for the endpoints in `api.py`: the real
401 and 429 bodies, `x-rate-limit-*` headers on every answer, and (when asked) the faults a
client meets in production: 429, 500, 503, slow answers, dropped connections, truncated bodies.
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from flixluigi.sandbox.api import SandboxApi

UNAUTHORIZED = {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
TOO_MANY = {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}
USAGE_CAPPED = {"account_id": 1, "product_name": "standard-basic", "title": "UsageCapExceeded", "period": "Monthly",
                "scope": "Product", "detail": "Usage cap exceeded: Monthly product cap",
                "type": "https://api.twitter.com/2/problems/usage-capped"}
SERVER_ERRORS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
FAULTS = ("429", "500", "502", "503", "504", "slow", "drop", "truncate")


@dataclass
class RateLimiter:
    """One fixed window per endpoint path, like the real per-app 15-minute windows."""

    limit: int
    window: float
    _state: dict[str, tuple[float, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key: str) -> tuple[bool, dict[str, str]]:
        with self._lock:
            now = time.time()
            reset, remaining = self._state.get(key, (0.0, 0))
            if now >= reset:
                reset, remaining = math.ceil(now + self.window), self.limit
            allowed = remaining > 0
            remaining = max(0, remaining - 1) if allowed else 0
            self._state[key] = (reset, remaining)
        return allowed, {"x-rate-limit-limit": str(self.limit), "x-rate-limit-remaining": str(remaining),
                         "x-rate-limit-reset": str(int(reset))}


@dataclass
class Faults:
    """Faults drawn per request from a seeded generator: the same seed, the same faults in order."""

    rate: float = 0.0
    kinds: tuple[str, ...] = FAULTS
    seed: int = 0
    slow_seconds: float = 2.0
    usage_capped: bool = False
    _rng: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; choose from {', '.join(FAULTS)}")
        self._rng = random.Random(self.seed)

    def draw(self) -> str | None:
        with self._lock:
            if self.rate and self._rng.random() < self.rate:
                return self._rng.choice(self.kinds)
        return None


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: SandboxApi, token: str, limiter: RateLimiter, faults: Faults):
        super().__init__(address, Handler)
        self.api, self.token, self.limiter, self.faults = api, token, limiter, faults
        self.requests_served = 0
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
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        if self.headers.get("Authorization", "") != f"Bearer {self.server.token}":
            return self._send(401, UNAUTHORIZED, {})
        if self.server.faults.usage_capped:
            return self._send(429, USAGE_CAPPED, {})
        allowed, headers = self.server.limiter.take(url.path)
        if not allowed:
            return self._send(429, TOO_MANY, headers)
        fault = self.server.faults.draw()
        if fault:
            self.server.faults_injected[fault] += 1
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
        status, body = self.server.api.handle(url.path, params)
        return self._send(status, body, headers, truncate=fault == "truncate")

    def _send(self, status: int, body: dict, headers: dict[str, str], truncate: bool = False) -> None:
        self.server.statuses[status] += 1
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        if truncate:
            payload = payload[: max(1, len(payload) // 2)]
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
