"""Headless Chromium through Playwright: open a local page, wait until it has drawn, check and screenshot it.

The report is a file people open in a browser, and the console a page served on 127.0.0.1, so
both are checked in one. Playwright for Python drives the distribution's Chromium
(`executable_path`: `playwright install` downloads browsers, which no machine here can, and is
never run). A page that draws after its load event sets `window.pageReady` to a promise; `open`
waits for it, so nothing here depends on sleeping long enough. No request leaves the machine:
every request to anything but a local file, data or 127.0.0.1 is aborted before it is sent and
listed in `Tab.outside`.

    with Browser() as browser:                  # one Chromium; a fresh context per page
        tab = browser.open("http://127.0.0.1:8090/")   # or a Path to a local HTML file
        tab.evaluate("document.title"); tab.screenshot("page.png")
        assert tab.problems() == []             # console errors, uncaught exceptions, failed and outside requests

    python -m devkit.browser report.html report.png   # full-page PNG; exit 1 and the problems if the page had any
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser as PlaywrightBrowser
from playwright.sync_api import ConsoleMessage, Page, Playwright, Request, Response, Route, sync_playwright
from playwright.sync_api import Error as PlaywrightError

CHROMIUM_ENV = "FLIXLUIGI_CHROMIUM"
CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
WINDOW = (1280, 900)
READY_JS = "Promise.resolve(window.pageReady).then(() => document.fonts.ready).then(() => true)"
LOCAL_SCHEMES = ("file", "data", "blob", "about")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
ABORTED = "net::ERR_BLOCKED_BY_CLIENT.Inspector"  # how Chromium logs a request Playwright aborted


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


def stays_local(url: str) -> bool:
    """A local file, inline data, or a server on this machine's loopback."""
    parts = urlsplit(url)
    return parts.scheme in LOCAL_SCHEMES or parts.hostname in LOOPBACK


class Tab:
    """One page in a context of its own, and everything it did since it was opened.

    `requested`: every URL it asked for, in order; `outside`: those aborted because they would
    have left the machine; `failed`: failed requests and answers of HTTP 400 or more;
    `console_errors`: console.error/assert lines, browser-logged errors (blocked loads, CSP) and
    uncaught exceptions. `page` is Playwright's Page, for anything more.
    """

    def __init__(self, page: Page, timeout: float):
        self.page, self.timeout = page, timeout
        self.requested: list[str] = []
        self.outside: list[str] = []
        self.failed: list[str] = []
        self.console_errors: list[str] = []
        page.set_default_timeout(timeout * 1000)
        page.route("**/*", self._route)
        page.on("request", lambda request: self.requested.append(request.url))
        page.on("requestfailed", self._request_failed)
        page.on("response", self._response)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.console_errors.append(f"uncaught exception: {error.name}: {error.message}"))

    def _route(self, route: Route) -> None:
        if stays_local(route.request.url):
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort("blockedbyclient")

    def _console(self, message: ConsoleMessage) -> None:
        # Chromium also logs each request `_route` aborted: that one is listed in `outside` already.
        if message.type in ("error", "assert") and not message.text.endswith(ABORTED):
            self.console_errors.append(f"console.{message.type}: {message.text}")

    def _request_failed(self, request: Request) -> None:
        if request.url not in self.outside:
            self.failed.append(f"request failed ({request.failure}): {request.url}")

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            self.failed.append(f"HTTP {response.status}: {response.url}")

    def goto(self, target: str | Path) -> Tab:
        """Load a URL or local file and wait until it has loaded and drawn (window.pageReady, fonts)."""
        url = target if isinstance(target, str) and urlsplit(target).scheme else Path(target).resolve().as_uri()
        try:
            answer = self.page.goto(url, wait_until="load")
        except PlaywrightError as exc:
            raise BrowserError(f"Chromium could not open {url}: {exc.message.splitlines()[0]}") from None
        if answer is not None and answer.status >= 400:
            raise BrowserError(f"{url} answered HTTP {answer.status}")
        self.evaluate(READY_JS)
        return self

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page (promises are awaited)."""
        try:
            return self.page.evaluate(expression)
        except PlaywrightError as exc:
            raise BrowserError(f"JavaScript failed in the page: {exc.message.splitlines()[0]}") from None

    def screenshot(self, png_path: str | Path) -> Path:
        """The whole page (not only the window) as a PNG file."""
        path = Path(png_path)
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def problems(self) -> list[str]:
        """What went wrong in the page so far, one line each; [] for a page that is fine."""
        return [*(f"request to a non-local URL (blocked): {url}" for url in self.outside), *self.failed, *self.console_errors]


class Browser:
    """One headless Chromium; `open` gives each page a fresh context (no cookies, cache or storage shared).

    Use as a context manager: the browser ends with the block. `timeout` bounds how long a broken
    page can hang a call; it never decides a result.
    """

    def __init__(self, binary: str | None = None, timeout: float = 60.0, window: tuple[int, int] = WINDOW):
        self.binary = binary or find_chromium()
        self.timeout, self.window = timeout, window
        self._playwright: Playwright | None = None
        self._browser: PlaywrightBrowser | None = None

    def __enter__(self) -> Browser:
        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(executable_path=self.binary, headless=True,
                                                             timeout=self.timeout * 1000)
        except PlaywrightError as exc:
            self._playwright.stop()
            raise BrowserError(f"{self.binary} did not start under Playwright: {exc.message.splitlines()[0]}") from None
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if self._browser is not None:
            self._browser.close()  # and every context opened in it
        if self._playwright is not None:
            self._playwright.stop()

    def open(self, target: str | Path) -> Tab:
        """A new tab on `target` (URL or local file), loaded and drawn; see Tab."""
        assert self._browser is not None, "use Browser as a context manager"
        context = self._browser.new_context(viewport={"width": self.window[0], "height": self.window[1]})
        return Tab(context.new_page(), self.timeout).goto(target)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m devkit.browser PAGE.html OUT.png", file=sys.stderr)
        return 2
    page, png = args
    try:
        with Browser() as browser:
            tab = browser.open(page)
            print(tab.screenshot(png))
            trouble = tab.problems()
    except BrowserError as exc:
        print(exc, file=sys.stderr)
        return 1
    for line in trouble:
        print(f"{page}: {line}", file=sys.stderr)
    return 1 if trouble else 0


if __name__ == "__main__":
    sys.exit(main())
