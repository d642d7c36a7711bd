"""An S3 fault proxy: a loopback HTTP server between the clients (boto3, delta-rs) and SeaweedFS.

Requests are forwarded byte for byte with their headers, Host included, so SigV4 signatures
still verify (the proxy never re-signs). Rules pick requests by method, key pattern and
occurrence and do one thing to them: answer 503 with an S3 XML error, reset the connection,
cut the answer's body short, answer 200 where the store refused a conditional PUT with 412 (a
store that ignores If-None-Match), or hold the request until the test releases it (`reached`
tells the test the request is there). Holding one writer's commit gives exact interleavings without
sleeps. Every request is logged with the status the store answered.

    with FaultProxy(seaweed.endpoint) as proxy:
        commit = proxy.add(Rule("PUT", r"/_delta_log/\\d+\\.json$", "hold"))
        ...; commit.reached.wait(30); ...; commit.release.set()
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

ACTIONS = ("503", "reset", "truncate", "ignore-precondition", "hold")
SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ServiceUnavailable</Code>'
             b"<Message>injected by the fault proxy</Message></Error>")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer", "upgrade"}
HOLD_LIMIT = 120.0  # seconds; only bounds how long a broken test hangs


@dataclass
class Rule:
    """Act on the `nth` and the following `times - 1` requests whose method is `method` and whose
    key matches `key` (a regex, searched); `times=0` acts on every one from the nth on.

    `method="*"` matches every method. `hold` waits for `release`, then does `then`: forward the
    request, or reset it unseen. `done` is set once an acted-on request is finished with."""

    method: str
    key: str
    action: str
    nth: int = 1
    times: int = 1
    then: str = "forward"
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    seen: int = 0
    acted: int = 0

    def __post_init__(self) -> None:
        if self.action not in ACTIONS or self.then not in ("forward", "reset"):
            raise ValueError(f"unknown action {self.action!r}/{self.then!r}; use one of {ACTIONS}, then forward|reset")
        self.pattern = re.compile(self.key)

    def claims(self, method: str, key: str) -> bool:
        """Counts a matching request; True when this one is to be acted on."""
        if self.method not in ("*", method) or not self.pattern.search(key):
            return False
        self.seen += 1
        last = self.nth + self.times - 1
        if self.seen >= self.nth and (self.times == 0 or self.seen <= last):
            self.acted += 1
            return True
        return False


@dataclass(frozen=True)
class Seen:
    """One request as the proxy saw it: what was asked, what happened, what the store answered."""

    method: str
    key: str
    action: str  # "forward" or the rule's action
    status: int | None  # the store's answer; None when it never got the request
    headers: dict[str, str]
    query: str = ""  # the request's query string (a listing's prefix is there)
    size: int = 0  # bytes of the store's answer body, for counting what a command reads


class FaultProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str):
        super().__init__(("127.0.0.1", 0), _Handler)
        target = urlsplit(upstream)
        self.upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.rules: list[Rule] = []
        self.log: list[Seen] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def add(self, rule: Rule) -> Rule:
        with self.lock:
            self.rules.append(rule)
        return rule

    def match(self, method: str, key: str) -> Rule | None:
        with self.lock:
            for rule in self.rules:
                if rule.claims(method, key):
                    return rule
        return None

    def record(self, seen: Seen) -> None:
        with self.lock:
            self.log.append(seen)

    def requests(self, method: str, key: str) -> list[Seen]:
        """Logged requests of a method whose key matches a regex, oldest first."""
        pattern = re.compile(key)
        with self.lock:
            return [s for s in self.log if s.method == method and pattern.search(s.key)]

    def handle_error(self, request: object, client_address: object) -> None:
        """A client killed or reset mid-request is part of the tests; anything else is a bug to show."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for rule in self.rules:
            rule.release.set()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: FaultProxy
    protocol_version = "HTTP/1.1"  # keep-alive, as the clients expect

    def log_message(self, format: str, *args: object) -> None:
        pass

    def setup(self) -> None:
        """Headers and body leave in separate writes: without TCP_NODELAY each answer on a kept-alive
        connection waits out the client's delayed ACK (~40 ms), which would swamp what is measured."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def __getattr__(self, name: str) -> object:
        """`do_GET`, `do_PUT`, ...: every method is relayed the same way."""
        if name.startswith("do_"):
            return self.relay
        raise AttributeError(name)

    def key(self) -> str:
        """The object key of a path-style request (/bucket/key?query), '' for bucket requests."""
        path = unquote(urlsplit(self.path).path)
        return path.split("/", 2)[2] if path.count("/") >= 2 else ""

    def read_body(self) -> bytes:
        """The request body exactly as sent (chunked framing included)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = bytearray()
            while True:
                line = self.rfile.readline()
                raw += line
                size = int(line.split(b";")[0], 16)
                raw += self.rfile.read(size + 2)
                if size == 0:
                    while (trailer := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
                        raw += trailer
                    raw += b"\r\n"
                    return bytes(raw)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def relay(self) -> None:
        body, key = self.read_body(), self.key()
        rule = self.server.match(self.command, key)
        try:
            self.act(rule, body, key)
        finally:
            if rule:
                rule.done.set()

    def act(self, rule: Rule | None, body: bytes, key: str) -> None:
        headers = dict(self.headers.items())
        action = rule.action if rule else "forward"
        if rule and rule.action == "hold":
            rule.reached.set()
            rule.release.wait(HOLD_LIMIT)
            action = rule.then
        if action == "reset":
            self.server.record(Seen(self.command, key, "reset", None, headers))
            self.reset()
        elif action == "503":
            self.server.record(Seen(self.command, key, "503", None, headers))
            self.answer(503, {"Content-Type": "application/xml", "Retry-After": "0"}, SLOW_DOWN)
        else:
            status, reason, answer_headers, answer = self.forward(body)
            self.server.record(Seen(self.command, key, action if action in ("truncate", "ignore-precondition") else "hold" if rule else "forward",
                                    status, headers, unquote(urlsplit(self.path).query), len(answer)))
            if action == "truncate":
                self.answer(status, answer_headers, answer[: len(answer) // 2], declared=len(answer), reason=reason)
                self.close_connection = True
            elif action == "ignore-precondition" and status == 412:
                self.answer(200, {"ETag": '"00000000000000000000000000000000"'}, b"")
            else:
                self.answer(status, answer_headers, answer, reason=reason)

    def forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """Send the request unchanged to the store; its answer, whole."""
        upstream = http.client.HTTPConnection(*self.server.upstream, timeout=60)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                upstream.putheader(name, value)
            upstream.endheaders(body or None)
            response = upstream.getresponse()
            answer = response.read()
            return response.status, response.reason, response.getheaders(), answer
        finally:
            upstream.close()

    def answer(self, status: int, headers: dict | list, body: bytes, declared: int | None = None, reason: str | None = None) -> None:
        self.send_response_only(status, reason)
        items = headers.items() if isinstance(headers, dict) else headers
        length = None
        for name, value in items:
            if name.lower() == "content-length":
                length = value
            elif name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        # HEAD answers declare the object's length; every other answer the body it carries.
        self.send_header("Content-Length", str(length if self.command == "HEAD" and length else
                                               declared if declared is not None else len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def reset(self) -> None:
        """Drop the connection with a TCP RST (SO_LINGER 0), as a crashed server or network does."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()
