"""`flixluigi console`: the web console's HTTP server (tornado) and its routes.

Tornado because it comes with luigi (luigid is a tornado application): no new dependency, and a
maintained server with signed cookies and CSRF tokens built in. Reads of S3 run in a thread pool,
so a slow store never blocks the page of another user; a run is a process of its own (`runs`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
from datetime import UTC, date, datetime
from pathlib import Path

import tornado.httpserver
import tornado.ioloop
import tornado.web

from flixluigi import config
from flixluigi.console import days, page
from flixluigi.console.auth import Authenticated, cookie_secret, load_token, token_matches
from flixluigi.console.runs import Runs, scheduler_url
from flixluigi.dates import day_range
from flixluigi.errors import ConsoleError, RunRefused, SchedulerUnreachable, TooManyTriggers, first_line
from flixluigi.ops.plan import TASKS, plan

MAX_REFUSED_LOGINS = 10  # a minute, whoever tries: guessing the token stays hopeless
MAX_DAYS = 800  # a calendar or API range of more days is refused (two years and then some)
CSP = ("default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def parse_day(value: object, name: str) -> date:
    """A day of a request, with the command line's one-line error."""
    from flixluigi.cli import parse_day as cli_parse

    if not isinstance(value, str):
        raise ConsoleError(f"--{name} is missing; use YYYY-MM-DD, e.g. 2022-09-12")
    try:
        return cli_parse(value)
    except argparse.ArgumentTypeError as exc:
        raise ConsoleError(str(exc)) from None


def parse_range(start: object, end: object) -> tuple[date, date]:
    first = parse_day(start, "start")
    last = parse_day(end, "end") if end not in (None, "") else first
    days = day_range(first, last)
    if len(days) > MAX_DAYS:
        raise ConsoleError(f"{len(days)} days from {first} to {last}: at most {MAX_DAYS} at a time")
    return first, last


class Handler(Authenticated):
    """Headers every answer carries, and errors as one line (JSON under /api)."""

    def set_default_headers(self) -> None:
        self.nonce = secrets.token_urlsafe(16)
        self.set_header("Content-Security-Policy", CSP.format(nonce=self.nonce))
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("Cache-Control", "no-store")

    @property
    def runs(self) -> Runs:
        return self.settings["runs"]

    def check_xsrf_cookie(self) -> None:
        """Tornado checks the CSRF token before `prepare`: an API caller with no valid token hears 401 first."""
        self.prepare()
        super().check_xsrf_cookie()

    def prepare(self) -> None:
        if self.request.path.startswith("/api/") and not self.current_user:
            raise tornado.web.HTTPError(401, reason="a valid token is needed: Authorization: Bearer $FLIXLUIGI_CONSOLE_TOKEN")

    def write_error(self, status_code: int, **kwargs: object) -> None:
        exc = kwargs.get("exc_info", (None, None))[1]
        line = self._reason if isinstance(exc, tornado.web.HTTPError) else first_line(exc) if exc else self._reason
        if status_code == 401:
            self.set_header("WWW-Authenticate", 'Bearer realm="flixluigi console"')
        self.set_header("Content-Type", "application/json" if self.request.path.startswith("/api/") else "text/plain")
        self.finish(json.dumps({"error": line}) if self.request.path.startswith("/api/") else line + "\n")

    async def blocking(self, function, *args):
        """Run S3 reads and process starts off the event loop; request errors become 4xx/5xx with their line."""
        try:
            return await asyncio.get_running_loop().run_in_executor(None, function, *args)
        except TooManyTriggers as exc:
            raise self.refusal(429, exc) from None
        except RunRefused as exc:
            raise self.refusal(409, exc) from None
        except SchedulerUnreachable as exc:
            raise self.refusal(503, exc) from None
        except LookupError as exc:
            raise self.refusal(404, exc) from None
        except (ConsoleError, ValueError) as exc:
            raise self.refusal(400, exc) from None

    def refusal(self, status: int, exc: BaseException) -> tornado.web.HTTPError:
        return tornado.web.HTTPError(status, reason=first_line(exc))

    def body(self) -> dict:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError as exc:
            raise self.refusal(400, ConsoleError(f"the request body is not JSON: {first_line(exc)}")) from None
        if not isinstance(body, dict):
            raise self.refusal(400, ConsoleError("the request body must be a JSON object"))
        return body

    def checked(self, function, *args):
        """A pure input check, with the same 400 as `blocking`."""
        try:
            return function(*args)
        except (ConsoleError, ValueError) as exc:
            raise self.refusal(400, exc) from None


class LoginHandler(Handler):
    def get(self) -> None:
        self.finish(page.login(self.xsrf_token.decode()))

    def post(self) -> None:
        if self.runs.recent("login refused") >= MAX_REFUSED_LOGINS:
            raise tornado.web.HTTPError(429, reason=f"{MAX_REFUSED_LOGINS} wrong tokens in the last minute: wait a minute")
        if token_matches(self.get_body_argument("token", ""), self.settings["token"]):
            self.log_in()
            self.runs.audit(f"session@{self.request.remote_ip}", "login")
            self.redirect("/")
            return
        self.runs.audit(f"nobody@{self.request.remote_ip}", "login refused")
        self.set_status(401)
        self.finish(page.login(self.xsrf_token.decode(), "wrong token"))


class LogoutHandler(Handler):
    def post(self) -> None:
        self.clear_cookie("flixluigi_session", path="/")
        self.redirect("/login")


def _view(args: dict[str, list[bytes]]) -> tuple[str, date]:
    view = args.get("view", [b"month"])[0].decode()
    at = args.get("at", [b""])[0].decode()
    anchor = date.fromisoformat(at) if at else datetime.now(UTC).date()
    return ("year" if view == "year" else "month"), anchor


class PageHandler(Handler):
    async def get(self) -> None:
        if not self.current_user:
            self.redirect("/login")
            return
        view, anchor = self.checked(_view, self.request.query_arguments)
        first, last = page.span(view, anchor)
        views = await self.blocking(days.calendar, first, last)
        runs = await self.blocking(self.runs.list)
        self.finish(page.page(page.calendar_html(views, days.totals(views), view, anchor), page.runs_html(runs),
                              self.xsrf_token.decode(), self.nonce, self.runs.scheduler, min(anchor, last)))


class ReportHandler(Handler):
    async def get(self) -> None:
        if not self.current_user:
            raise tornado.web.HTTPError(401, reason="log in first")
        first, last = self.checked(parse_range, self.get_query_argument("start", None), self.get_query_argument("end", None))
        from flixluigi.ops.report import CSP as REPORT_CSP  # plotly: only the report needs it
        from flixluigi.ops.report import report_html

        html = await self.blocking(report_html, first, last)
        # The report's <meta> policy names its own scripts by hash; both policies apply.
        self.set_header("Content-Security-Policy", REPORT_CSP.format(scripts="'unsafe-inline'"))
        self.finish(html)


class DaysApi(Handler):
    async def get(self) -> None:
        first, last = self.checked(parse_range, self.get_query_argument("start", None), self.get_query_argument("end", None))
        views = await self.blocking(days.calendar, first, last)
        self.finish({"days": [v.as_json() for v in views], "totals": days.totals(views)})


class RunsApi(Handler):
    async def get(self) -> None:
        self.finish({"runs": await self.blocking(self.runs.list)})

    async def post(self) -> None:
        body = self.body()
        task = body.get("task")
        if task not in TASKS:
            raise self.refusal(400, ConsoleError(f"task must be one of {', '.join(TASKS)}, not {task!r}"))
        first, last = self.checked(parse_range, body.get("start"), body.get("end"))
        refetch = body.get("refetch") is True
        if body.get("dry_run") is True:
            planned = await self.blocking(plan, task, first, last, refetch)
            self.finish({"plan": planned.as_json()})
            return
        run_id = await self.blocking(self.runs.trigger, task, first, last, refetch, self.requester())
        self.set_status(201)
        self.finish({"id": run_id, "state": "queued"})


class RunApi(Handler):
    async def get(self, run_id: str) -> None:
        self.finish(await self.blocking(self.runs.get, run_id))


class CancelApi(Handler):
    async def post(self, run_id: str) -> None:
        self.finish(await self.blocking(self.runs.cancel, run_id, self.requester()))


class AirflowDagRuns(Handler):
    """The original design's trigger, as Airflow's REST API takes it: a Reprocess of the conf's range."""

    async def post(self) -> None:
        conf = self.body().get("conf")
        if not isinstance(conf, dict):
            raise self.refusal(400, ConsoleError('the body needs "conf": {"ui_start_date": "YYYY-MM-DD", "ui_end_date": ...}'))
        first, last = self.checked(parse_range, conf.get("ui_start_date"), conf.get("ui_end_date"))
        run_id = await self.blocking(self.runs.trigger, "Reprocess", first, last, False, self.requester())
        self.set_status(200)
        self.finish({"dag_id": "flixluigi", "dag_run_id": run_id, "state": "queued",
                     "conf": {"ui_start_date": first.isoformat(), "ui_end_date": last.isoformat()}})


def application(token: str, runs: Runs) -> tornado.web.Application:
    return tornado.web.Application([
        (r"/", PageHandler), (r"/login", LoginHandler), (r"/logout", LogoutHandler), (r"/report", ReportHandler),
        (r"/api/days", DaysApi), (r"/api/runs", RunsApi), (r"/api/runs/([^/]+)", RunApi),
        (r"/api/runs/([^/]+)/cancel", CancelApi), (r"/api/v1/dags/flixluigi/dagRuns", AirflowDagRuns),
    ], token=token, runs=runs, cookie_secret=cookie_secret(token), xsrf_cookies=True,
        xsrf_cookie_kwargs={"httponly": True, "samesite": "Strict"}, default_handler_class=NotFound)


class NotFound(Handler):
    def prepare(self) -> None:
        raise tornado.web.HTTPError(404, reason=f"no such page: {self.request.path}")


def state_dir() -> Path:
    configured = config.console().state_dir
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "flixluigi-console"


def serve(host: str, port: int, behind_proxy: bool, config_path: str | None) -> None:
    """Start the console and serve until interrupted; refuses to start without its token."""
    token = load_token()
    runs = Runs(state_dir(), scheduler_url(), config_path)
    server = tornado.httpserver.HTTPServer(application(token, runs), xheaders=behind_proxy)
    server.listen(port, address=host)
    print(f"flixluigi console: http://{host}:{port}/ (luigid {runs.scheduler}, runs in {runs.folder})", flush=True)
    tornado.ioloop.IOLoop.current().start()
