"""The web console and the dry run it shows: over HTTP against a real luigid, SeaweedFS and the sandbox,
and its page through a real browser."""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import requests

from devkit.browser import Browser, BrowserError, Tab, find_chromium
from flixluigi import cli
from flixluigi.console.days import classify
from flixluigi.console.runs import Runs
from flixluigi.errors import SchedulerUnreachable, TooManyTriggers
from flixluigi.ops.plan import plan
from flixluigi.ops.status import verify
from flixluigi.tasks import CuratedTweets, RawTweets, Reprocess
from tests.conftest import HMAC_KEY, SECRET_KEY, TOKEN, free_port
from tests.faultproxy import FaultProxy, Rule
from tests.helpers import build, records
from tests.test_concurrency import LOG_ENTRY
from tests.test_luigid import luigid, tasks  # noqa: F401 - the fixture

D = date(2022, 9, 12)
CONSOLE_TOKEN = "console-token-0123456789abcdef"
FLIXLUIGI = str(Path(sys.executable).parent / "flixluigi")
ENDED = ("success", "failed", "cancelled")


class Console:
    """`flixluigi console` as a process of its own, on the test's settings."""

    def __init__(self, pipeline, tmp_path: Path, scheduler_port: int):
        pipeline.set("console", "state_dir", str(tmp_path / "console"))
        pipeline.set("console", "scheduler_url", f"http://127.0.0.1:{scheduler_port}")
        cfg = pipeline.write_cfg(tmp_path / "console.cfg")
        self.port, self.state = free_port(), tmp_path / "console"
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([FLIXLUIGI, "console", "--port", str(self.port)], cwd=tmp_path, text=True,
                                        env={**os.environ, "LUIGI_CONFIG_PATH": str(cfg), "FLIXLUIGI_CONSOLE_TOKEN": CONSOLE_TOKEN},
                                        stdout=subprocess.PIPE, stderr=open(tmp_path / "console.err", "w"))  # noqa: SIM115
        line = self.process.stdout.readline()  # printed once it listens
        assert line.startswith(f"flixluigi console: {self.url}/"), line + (tmp_path / "console.err").read_text()[-2000:]

    def call(self, method: str, path: str, token: str | None = CONSOLE_TOKEN, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def wait(self, run_id: str) -> dict:
        """The run once it has ended (polled: it runs a `luigi` process)."""
        for _ in range(600):
            run = self.call("GET", f"/api/runs/{run_id}").json()
            if run["state"] in ENDED:
                return run
            time.sleep(0.2)
        raise AssertionError(f"run {run_id} did not end: {run}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture
def console(pipeline, luigid, tmp_path) -> Iterator[Console]:  # noqa: F811 - luigid is the imported fixture
    started: list[Console] = []

    def start() -> Console:
        started.append(Console(pipeline, tmp_path, luigid))
        return started[-1]

    yield start
    for each in started:
        each.stop()


def test_plan_reads_stored_counts_only_and_names_what_each_day_gets(pipeline):
    assert build(CuratedTweets(D), RawTweets(date(2022, 9, 13))).scheduling_succeeded
    backfill = plan("Backfill", D, date(2022, 9, 14))
    assert [d.action.split(":")[0].split(" from")[0] for d in backfill.days] == ["complete", "build", "fetch"]
    (fetched,) = backfill.fetched
    assert fetched.expected_posts is not None, "the month's counts were stored by the fetch of 2022-09-12"
    assert backfill.cost_line().startswith(f"Backfill {D}..2022-09-14 reads the X API for 1 day(s): "
                                           f"{fetched.expected_posts} posts expected, about $")
    refetch = plan("Reprocess", date(2022, 10, 1), date(2022, 10, 2), refetch=True)
    assert refetch.unknown == [date(2022, 10, 1), date(2022, 10, 2)], "no counts stored for October: unknown, not fetched"
    assert "unknown for 2 day(s)" in refetch.cost_line()
    assert plan("Reprocess", D).days[0].action.startswith("rebuild from raw fetch ")
    assert plan("Compliance", date(2022, 9, 14)).cost_line().endswith("reads no post from the API: no cost")


def test_day_states():
    now = datetime(2022, 9, 20, tzinfo=UTC)
    hour = timedelta(hours=1)
    failure = {"task": "Rebuild", "error": "no raw fetch", "at": now - hour}
    assert classify(False, False, None, None, None, None, now, 24) == ("missing", "no raw fetch stored")
    assert classify(True, False, None, None, now, None, now, 24)[0] == "stale"
    assert classify(True, False, failure, None, now, None, now, 24) == ("failed", "Rebuild failed: no raw fetch")
    assert classify(True, True, failure, now - 2 * hour, now, None, now, 24)[0] == "failed", "the failure is newer"
    assert classify(True, True, failure, now, now, None, now, 24)[0] == "ok", "a build after the failure mends it"
    assert classify(True, True, None, now, now - 25 * hour, None, now, 24)[1] == "compliance due: never checked, more than 24 h ago"
    assert classify(True, True, None, now, now - 25 * hour, now - hour, now, 24)[0] == "ok"
    assert classify(True, True, None, now, now - 99 * hour, None, now, 0)[0] == "ok", "0: compliance is never due"


def test_the_api_needs_the_token_and_refuses_bad_ranges_with_the_cli_line(pipeline, console, tmp_path, capsys):
    refused = subprocess.run([FLIXLUIGI, "console", "--port", str(free_port())], capture_output=True, text=True, timeout=60,
                             env={k: v for k, v in os.environ.items() if k != "FLIXLUIGI_CONSOLE_TOKEN"})
    assert refused.returncode == 1 and refused.stderr.startswith("flixluigi: no console token: export $FLIXLUIGI_CONSOLE_TOKEN")
    with FaultProxy(pipeline.seaweed.endpoint) as proxy:
        pipeline.set("s3", "endpoint_url", proxy.url)  # the console's runs go through the proxy
        held = proxy.add(Rule("*", ".", "hold"))  # the first S3 request of the run to cancel (nothing else here reads S3)
        app = console()
        pipeline.set("s3", "endpoint_url", pipeline.seaweed.endpoint)
        _check_the_api(app, held, capsys)


def _check_the_api(app: Console, held: Rule, capsys) -> None:
    for token in (None, "wrong-token-0123456789abcdef"):
        answer = app.call("POST", "/api/runs", token=token, json={"task": "Reprocess", "start": "2022-09-12"})
        assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert app.call("GET", "/api/days?start=2022-09-12", token=token).status_code == 401
    assert not [p for p in app.state.iterdir() if p.is_dir()], "a refused request starts nothing"
    assert requests.get(app.url + "/", allow_redirects=False, timeout=10).headers["Location"] == "/login"
    assert requests.post(app.url + "/login", data={"token": CONSOLE_TOKEN}, timeout=10).status_code == 403, "no CSRF token"

    assert cli.main(["plan", "Reprocess", "--start", "2022-09-14", "--end", "2022-09-12"]) == 1
    reversed_line = capsys.readouterr().err.strip().removeprefix("flixluigi: ")
    with pytest.raises(SystemExit):
        cli.main(["plan", "Reprocess", "--start", "2022-13-01"])
    malformed = capsys.readouterr().err
    for body, line in (({"task": "Reprocess", "start": "2022-09-14", "end": "2022-09-12"}, reversed_line),
                       ({"task": "Backfill", "start": "2022-13-01", "dry_run": True}, "'2022-13-01' is not a date; use "
                                                                                      "YYYY-MM-DD, e.g. 2022-09-12")):
        answer = app.call("POST", "/api/runs", json=body)
        assert (answer.status_code, answer.json()) == (400, {"error": line})
        assert line in malformed or line == reversed_line
    answer = app.call("GET", "/api/days?start=2022-09-14&end=2022-09-12")
    assert (answer.status_code, answer.json()) == (400, {"error": reversed_line})
    answer = app.call("POST", "/api/v1/dags/flixluigi/dagRuns", json={"conf": {"ui_start_date": "12/09/2022"}})
    assert (answer.status_code, answer.json()) == (400, {"error": "'12/09/2022' is not a date; use YYYY-MM-DD, e.g. 2022-09-12"})

    run_id = app.call("POST", "/api/runs", json={"task": "Compliance", "start": "2022-09-12"}).json()["id"]
    assert held.reached.wait(60), "the run never reached S3"
    assert app.call("POST", f"/api/runs/{run_id}/cancel").json()["state"] == "cancelled"
    assert app.wait(run_id)["state"] == "cancelled"
    pid = int((app.state / run_id / "pid").read_text())
    for _ in range(300):  # its whole session is stopped (reading the run reaps the console's own child)
        app.call("GET", f"/api/runs/{run_id}")
        if subprocess.run(["pgrep", "-s", str(pid)], capture_output=True).returncode == 1:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the cancelled run's processes still run")
    answer = app.call("POST", f"/api/runs/{run_id}/cancel")
    assert (answer.status_code, answer.json()) == (400, {"error": f"run {run_id} has already ended"})
    assert app.call("GET", "/api/runs/../../etc").status_code == 404

    browser = requests.Session()
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', browser.get(app.url + "/login", timeout=10).text).group(1)
    answers = [browser.post(app.url + "/login", data={"_xsrf": xsrf, "token": f"guess-{n}"}, timeout=10).status_code
               for n in range(11)]
    assert answers == [401] * 10 + [429], "ten wrong tokens a minute, then no more tries"
    assert [a["action"] for a in map(json.loads, (app.state / "audit.log").read_text().splitlines())].count("login refused") == 10


def test_triggers_are_rate_limited_by_the_audit_log(pipeline, tmp_path):
    runs = Runs(tmp_path / "state", "http://127.0.0.1:9")  # nothing listens: the limit is checked first
    for _ in range(6):
        runs.audit("bearer@127.0.0.1", "trigger", task="Backfill")
    with pytest.raises(TooManyTriggers, match=r"^6 runs were started in the last minute \(\[console\] triggers_per_minute\)"):
        runs.trigger("Backfill", D, D, False, "bearer@127.0.0.1")
    pipeline.set("console", "triggers_per_minute", "7")
    with pytest.raises(SchedulerUnreachable, match=r"^luigid at http://127.0.0.1:9 does not answer"):
        runs.trigger("Backfill", D, D, False, "bearer@127.0.0.1")
    assert [json.loads(line)["action"] for line in (tmp_path / "state" / "audit.log").read_text().splitlines()][-2:] == \
        ["refused", "refused"]


def test_a_trigger_builds_the_days_through_luigid_and_a_second_one_is_refused_while_it_runs(pipeline, console, luigid,  # noqa: F811
                                                                                             tmp_path):
    endpoint = pipeline.seaweed.endpoint
    days = {"start": "2022-09-12", "end": "2022-09-13"}
    with FaultProxy(endpoint) as proxy:
        pipeline.set("s3", "endpoint_url", proxy.url)  # the console's runs go through the proxy
        commit = proxy.add(Rule("PUT", LOG_ENTRY, "hold"))
        app = console()
        pipeline.set("s3", "endpoint_url", endpoint)
        first = app.call("POST", "/api/runs", json={"task": "Backfill", **days})
        assert first.status_code == 201, first.text
        run_id = first.json()["id"]
        assert commit.reached.wait(60), app.call("GET", f"/api/runs/{run_id}").json()
        assert app.call("GET", f"/api/runs/{run_id}").json()["state"] == "running"
        again = app.call("POST", "/api/runs", json={"task": "Reprocess", "start": "2022-09-13", "end": "2022-09-14"})
        assert again.status_code == 409
        assert again.json()["error"].startswith("2022-09-13 is running in luigid (CuratedTweets_2022_09_13_"), again.json()
        airflow = app.call("POST", "/api/v1/dags/flixluigi/dagRuns", json={"conf": {"ui_start_date": "2022-09-12"}})
        assert airflow.status_code == 409, airflow.text
        commit.release.set()
        run = app.wait(run_id)
        assert run["state"] == "success", run
        assert run["progress"]["done"] == run["progress"]["tasks"] > 0
        assert "ran successfully" in run["summary"] and "CuratedTweets" in run["summary"]
        assert "flixluigi: run summary: " in run["summary"]  # the day tasks' own summary (flixluigi.runs)
        assert run["outcome"]["days"]["curated"] == ["2022-09-12", "2022-09-13"] and run["outcome"]["failures"] == []
        assert run["luigid"] == f"http://127.0.0.1:{luigid}/static/visualiser/index.html#tab=graph&taskId={run['task_id']}"
        finished = tasks(luigid, "DONE")
        assert run["task_id"] in finished, "the link names the run's task as luigid knows it"
        done = {(t["name"], t["params"].get("date")) for t in finished.values()}
        assert {("CuratedTweets", "2022-09-12"), ("CuratedTweets", "2022-09-13"), ("Backfill", None)} <= done
        assert verify(D, date(2022, 9, 13)) == []
        shown = json.dumps(app.call("GET", f"/api/runs/{run_id}").json())
        for secret in (CONSOLE_TOKEN, TOKEN, HMAC_KEY, SECRET_KEY, f"username={getpass.getuser()}"):
            assert secret not in shown

        triggered = app.call("POST", "/api/v1/dags/flixluigi/dagRuns",
                             json={"conf": {"ui_start_date": "2022-09-12", "ui_end_date": "2022-09-13"}})
        assert triggered.status_code == 200, triggered.text
        reprocess = app.wait(triggered.json()["dag_run_id"])
        assert (reprocess["state"], reprocess["task"], reprocess["start"], reprocess["end"], reprocess["refetch"]) == \
            ("success", "Reprocess", "2022-09-12", "2022-09-13", False), reprocess
        assert [len(records(endpoint, pipeline.run, day)) for day in ("2022-09-12", "2022-09-13")] == [2, 2], "rebuilt once more"
        report = app.call("GET", "/report?start=2022-09-12&end=2022-09-13")
        assert report.status_code == 200 and "2022-09-12" in report.text, report.text[:500]
    audit = [json.loads(line) for line in (app.state / "audit.log").read_text().splitlines()]
    assert [(a["action"], a.get("task")) for a in audit] == [("trigger", "Backfill"), ("refused", "Reprocess"),
                                                             ("refused", "Reprocess"), ("trigger", "Reprocess")]
    assert all(a["requester"] == "bearer@127.0.0.1" and a["time"] for a in audit)

    app.stop()  # the runs survive a restart of the console
    listed = console().call("GET", "/api/runs").json()["runs"]
    assert [(r["id"], r["state"]) for r in listed] == [(reprocess["id"], "success"), (run_id, "success")]


@pytest.fixture
def browser() -> Iterator[Tab]:
    """A tab in the system's Chromium (devkit.browser): it records the page's console errors and
    failed requests, and blocks and records any request that would leave the machine."""
    try:
        find_chromium()
    except BrowserError as missing:  # scripts/test.sh installs it only as root or with sudo
        pytest.skip(str(missing))
    with Browser(window=(1280, 1100)) as chromium:
        yield chromium.open("about:blank")


def test_the_page_shows_the_days_and_runs_a_dry_run_then_the_run(pipeline, console, browser, tmp_path):
    page = browser.page
    assert build(CuratedTweets(date(2022, 9, 11)), RawTweets(date(2022, 9, 10))).scheduling_succeeded
    build(Reprocess(start=date(2022, 9, 9)))  # no raw day: its Rebuild fails, with its reason
    app = console()
    page.goto(app.url + "/")
    page.fill("input[name=token]", CONSOLE_TOKEN)
    with page.expect_navigation():  # the login's own page loads whole: no request of it is cut off by the next goto
        page.click("button[type=submit]")
    page.goto(app.url + "/?view=month&at=2022-09-01")
    page.wait_for_function("window.pageReady === true")

    def states() -> dict[str, str]:
        return {day: page.get_attribute(f'.day[data-date="2022-09-{day}"]', "data-state") for day in ("09", "10", "11", "12")}

    assert states() == {"09": "failed", "10": "stale", "11": "ok", "12": "missing"}
    assert "no raw fetch of the day is stored" in page.get_attribute('.day[data-date="2022-09-09"]', "title")
    assert page.text_content("#failures").startswith("2022-09-09: Rebuild failed: 2022-09-09: no raw fetch of the day is stored")
    page.select_option("select[name=task]", "Backfill")
    page.fill("input[name=start]", "2022-09-12")
    page.click("#dry-run")
    page.wait_for_selector("#plan:not([hidden])")
    assert page.text_content("#plan-lines").startswith("2022-09-12: fetch from the API, then build (")
    assert "reads the X API for 1 day(s)" in page.text_content("#confirm")
    page.click("#confirm")
    page.wait_for_selector(", ".join([*(f'#run[data-run-state="{state}"]' for state in ENDED), "#error:not(:empty)"]),
                              timeout=120_000)
    assert page.get_attribute("#run", "data-run-state") == "success", \
        (page.text_content("#error"), page.text_content("#run-summary"), page.text_content("#run-log")[-3000:])
    page.wait_for_selector('.day[data-date="2022-09-12"][data-state="ok"]')
    assert states() == {"09": "failed", "10": "stale", "11": "ok", "12": "ok"}
    assert "ran successfully" in page.text_content("#run-summary")
    assert page.text_content("#totals").startswith("30 days: 2 ok, 1 stale, 26 missing, 1 failed, 0 compliance due · ")
    page.screenshot(path=str(tmp_path / "console.png"), full_page=True)
    if os.environ.get("FLIXLUIGI_SCREENSHOT"):
        shutil.copy(tmp_path / "console.png", os.environ["FLIXLUIGI_SCREENSHOT"])
    assert browser.problems() == []
