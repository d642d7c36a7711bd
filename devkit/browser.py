"""Headless Chromium driven over its DevTools protocol (CDP): open a local page, watch it, screenshot it.

The report is a file people open in a browser, so it is checked in one: this module starts the
distribution's `chromium` with a fresh profile and no background services, attaches to one tab
over a single websocket, and records every network request, console message and exception the
page causes. A page that draws after its load event sets `window.pageReady` to a promise; `open`
waits for it, so nothing here depends on sleeping long enough.

    python -m devkit.browser report.html report.png   # full-page PNG; exit 1 and the problems if the page had any
"""

from __future__ import annotations

import base64
import collections
import contextlib
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import websocket

CHROMIUM_ENV = "FLIXLUIGI_CHROMIUM"
CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-default-browser-check", "--mute-audio", "--hide-scrollbars", "--remote-debugging-port=0")
WINDOW = (1280, 900)
DEVTOOLS_RE = re.compile(r"DevTools listening on (ws://\S+)")
READY_JS = "Promise.resolve(window.pageReady).then(() => document.fonts.ready).then(() => true)"


LOCAL_SCHEMES = ("file", "data", "blob", "about")


class BrowserError(RuntimeError):
    """Chromium is missing, did not start, or the page failed in it."""


def find_chromium() -> str:
    """The browser binary: $FLIXLUIGI_CHROMIUM, else the first of CANDIDATES on PATH."""
    named = os.environ.get(CHROMIUM_ENV)
    found = shutil.which(named) if named else next(filter(None, map(shutil.which, CANDIDATES)), None)
    if not found:
        raise BrowserError(f"no Chromium found ({named or ', '.join(CANDIDATES)}): apt-get install chromium, "
                           f"or set {CHROMIUM_ENV} to the browser's path")
    return found


class Browser:
    """One headless Chromium with one tab; `events` holds every CDP event of the tab, in order.

    Use as a context manager: the browser process and its throwaway profile end with the block.
    `timeout` bounds how long a broken browser can hang a call; it never decides a result.
    """

    def __init__(self, binary: str | None = None, timeout: float = 60.0, window: tuple[int, int] = WINDOW):
        self.binary = binary or find_chromium()
        self.timeout = timeout
        self.window = window
        self.events: list[dict] = []
        self._ids = iter(range(1, sys.maxsize))
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)
        self._profile: tempfile.TemporaryDirectory | None = None
        self._process: subprocess.Popen | None = None
        self._socket: websocket.WebSocket | None = None
        self._session = ""

    def __enter__(self) -> Browser:
        self._profile = tempfile.TemporaryDirectory(prefix="flixluigi-chromium-", ignore_cleanup_errors=True)
        flags = [*FLAGS, f"--user-data-dir={self._profile.name}", f"--window-size={self.window[0]},{self.window[1]}"]
        if os.geteuid() == 0:  # Chromium's sandbox refuses to run as root
            flags.append("--no-sandbox")
        try:
            self._process = subprocess.Popen([self.binary, *flags, "about:blank"], stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            url = self._devtools_url()
            self._socket = websocket.create_connection(url, timeout=self.timeout, suppress_origin=True,
                                                       enable_multithread=False)
            target = self._call("Target.createTarget", url="about:blank")["targetId"]
            self._session = self._call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Page", "Network", "Runtime", "Log"):
                self.call(f"{domain}.enable")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        closed = False
        if self._socket is not None:
            with contextlib.suppress(BrowserError, OSError, websocket.WebSocketException):
                self._call("Browser.close")  # lets Chromium end its helper processes before the profile goes
                closed = True
            self._socket.close()
        if self._process is not None:
            if not closed:
                self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._profile is not None:
            self._profile.cleanup()

    def _devtools_url(self) -> str:
        """The browser's websocket address, from the line Chromium prints on stderr once it listens."""
        assert self._process is not None and self._process.stderr is not None
        found: queue.Queue[str | None] = queue.Queue()
        stderr = self._process.stderr

        def drain() -> None:  # keeps reading, or a chatty Chromium blocks on a full pipe
            for line in stderr:
                self._stderr.append(line.rstrip())
                if match := DEVTOOLS_RE.search(line):
                    found.put(match.group(1))
            found.put(None)

        threading.Thread(target=drain, name="chromium-stderr", daemon=True).start()
        try:
            url = found.get(timeout=self.timeout)
        except queue.Empty:
            url = None
        if url is None:
            raise BrowserError(f"{self.binary} did not start its DevTools endpoint: {' | '.join(self._stderr)[-600:]}")
        return url

    def call(self, method: str, **params: Any) -> dict:
        """A CDP command to the tab; its result, or BrowserError with the protocol's message."""
        return self._call(method, session=self._session, **params)

    def _call(self, method: str, session: str = "", **params: Any) -> dict:
        assert self._socket is not None
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self._socket.send(json.dumps(message))
        while True:
            answer = self._receive()
            if answer.get("id") == ident:
                if "error" in answer:
                    raise BrowserError(f"{method} failed in Chromium: {answer['error'].get('message')}")
                return answer.get("result", {})

    def _receive(self) -> dict:
        """The next message; events of the tab are kept in `events` on the way."""
        assert self._socket is not None
        try:
            message = json.loads(self._socket.recv())
        except (websocket.WebSocketTimeoutException, websocket.WebSocketConnectionClosedException) as exc:
            raise BrowserError(f"Chromium stopped answering ({type(exc).__name__}): {' | '.join(self._stderr)[-600:]}") from None
        if "method" in message and message.get("sessionId") == self._session:
            self.events.append(message)
        return message

    def wait_for(self, method: str, since: int = 0) -> dict:
        """The first event `method` at or after events[since], reading on until it arrives."""
        deadline = time.monotonic() + self.timeout
        while True:
            for event in self.events[since:]:
                if event["method"] == method:
                    return event
            since = len(self.events)
            if time.monotonic() > deadline:
                raise BrowserError(f"Chromium sent no {method} within {self.timeout:.0f} s")
            self._receive()

    def open(self, path: str | Path) -> None:
        """Load a local file and wait until it has loaded and drawn (window.pageReady, fonts).

        `events` starts afresh, so afterwards it holds this page's events only.
        """
        url = Path(path).resolve().as_uri()
        self.events = []
        answer = self.call("Page.navigate", url=url)
        if answer.get("errorText"):
            raise BrowserError(f"Chromium could not open {url}: {answer['errorText']}")
        self.wait_for("Page.loadEventFired")
        self.evaluate(READY_JS)

    def problems(self) -> list[str]:
        """What went wrong in the page so far, one line each (see `problems`)."""
        return problems(self.events)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the tab (promises are awaited)."""
        answer = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            raise BrowserError(f"JavaScript failed in the page: {details.get('exception', {}).get('description') or details.get('text')}")
        return answer["result"].get("value")

    def screenshot(self, png_path: str | Path) -> Path:
        """The whole page (not only the window) as a PNG file."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip)["data"]
        path = Path(png_path)
        path.write_bytes(base64.b64decode(data))
        return path


def problems(events: list[dict]) -> list[str]:
    """Failed requests, requests to anything but a local URL, console errors, uncaught exceptions and
    browser-logged errors (blocked loads, CSP violations) among a tab's CDP events."""
    found, urls = [], {}
    for event in events:
        method, params = event["method"], event["params"]
        if method == "Network.requestWillBeSent":
            url = urls[params["requestId"]] = params["request"]["url"]
            if url.split(":", 1)[0].lower() not in LOCAL_SCHEMES:
                found.append(f"request to a non-local URL: {url}")
        elif method == "Network.loadingFailed":
            why = params.get("errorText") or f"blocked: {params.get('blockedReason') or params.get('corsErrorStatus') or 'unknown'}"
            found.append(f"request failed ({why}): {urls.get(params['requestId'], '?')}")
        elif method == "Network.responseReceived" and params["response"].get("status", 0) >= 400:
            found.append(f"HTTP {params['response']['status']}: {params['response']['url']}")
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            found.append(f"console.{params['type']}: " + " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            found.append(f"uncaught exception: {details.get('exception', {}).get('description') or details.get('text')}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            found.append(f"browser error ({params['entry']['source']}): {params['entry']['text']}")
    return found


def screenshot(html_path: str | Path, png_path: str | Path) -> Path:
    """Open a local HTML file in headless Chromium and write a full-page PNG of it."""
    with Browser() as browser:
        browser.open(html_path)
        return browser.screenshot(png_path)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m devkit.browser PAGE.html OUT.png", file=sys.stderr)
        return 2
    page, png = args
    try:
        with Browser() as browser:
            browser.open(page)
            print(browser.screenshot(png))
            trouble = browser.problems()
    except BrowserError as exc:
        print(exc, file=sys.stderr)
        return 1
    for line in trouble:
        print(f"{page}: {line}", file=sys.stderr)
    return 1 if trouble else 0


if __name__ == "__main__":
    sys.exit(main())
