"""Runs through a real luigid: several workers, the web view's API, failures that do not outlive their run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from flixluigi.ops.status import verify
from tests.conftest import ROOT, free_port
from tests.helpers import curated

LUIGI = str(Path(sys.executable).parent / "luigi")


@pytest.fixture
def luigid(tmp_path: Path):
    port = free_port()
    env = {**os.environ, "LUIGID_PORT": str(port), "LUIGID_DIR": str(tmp_path / "luigid")}
    script = str(ROOT / "scripts" / "luigid.sh")
    subprocess.run([script, "start"], env=env, check=True, capture_output=True, timeout=60)
    yield port
    subprocess.run([script, "stop"], env=env, check=True, capture_output=True, timeout=60)
    assert (tmp_path / "luigid" / "state.pickle").exists(), "luigid saves its state on shutdown"


def tasks(port: int, status: str) -> dict:
    answer = requests.get(f"http://127.0.0.1:{port}/api/task_list", params={"data": json.dumps({"status": status})}, timeout=10)
    return answer.json()["response"]


def luigi_command(pipeline, tmp_path: Path, port: int, *args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    cfg = pipeline.write_cfg(tmp_path / "luigi.cfg")
    started = time.monotonic()
    done = subprocess.run([LUIGI, "--module", "flixluigi", *args, "--scheduler-host", "127.0.0.1", "--scheduler-port", str(port)],
                          env={**os.environ, "LUIGI_CONFIG_PATH": str(cfg), **(env or {})}, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    return done, time.monotonic() - started


def test_range_with_two_workers_through_luigid(pipeline, luigid, tmp_path):
    done, _ = luigi_command(pipeline, tmp_path, luigid, "RangeDaily", "--of", "CuratedTweets", "--start", "2021-01-01",
                            "--stop", "2021-01-05", "--workers", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    finished = tasks(luigid, "DONE")
    curated_tasks = {t["params"]["date"]: t for t in finished.values() if t["name"] == "CuratedTweets"}
    raw_tasks = {t["params"]["date"]: t for t in finished.values() if t["name"] == "RawTweets"}
    days = {"2021-01-01", "2021-01-02", "2021-01-03", "2021-01-04"}
    assert set(curated_tasks) == set(raw_tasks) == days
    for task in curated_tasks.values():
        assert task["progress_percentage"] == 100 and task["status_message"].startswith("done: ")
    for task in raw_tasks.values():
        assert task["progress_percentage"] == 100 and " pages, " in task["status_message"]
    assert tasks(luigid, "FAILED") == {}
    from datetime import date

    assert verify(date(2021, 1, 1), date(2021, 1, 4)) == []
    # luigid.cfg switches on luigid's Prometheus collector (scripts/luigid.sh reads it on top of luigi.cfg).
    done_total = scrape(luigid)["luigi_task_done_total"]
    assert done_total[(("family", "CuratedTweets"),)] == done_total[(("family", "RawTweets"),)] == 4


def scrape(port: int) -> dict[str, dict[tuple, float]]:
    """luigid's /metrics through prometheus_client's parser: family -> labels -> value."""
    answer = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain"), answer.text[:300]
    found: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_failure_notification_links_to_the_task_in_luigid(pipeline, luigid, slack, tmp_path):
    done, _ = luigi_command(pipeline, tmp_path, luigid, "RawTweets", "--date", "2022-09-12",
                            env={"X_BEARER_TOKEN": "not-the-token"})
    assert done.returncode == 30, done.stderr[-2000:]
    [event] = slack.bodies("/hook")
    assert event["link"].startswith(f"http://127.0.0.1:{luigid}/static/visualiser/index.html#tab=graph&taskId=ApiAvailable_")
    assert event["link"] in slack.bodies("/slack")[0]["text"]
    assert "not-the-token" not in repr(slack.received)
    assert "not-the-token" not in done.stderr + done.stdout, "the token must never reach a log line"


def test_a_failed_check_does_not_outlive_its_run(pipeline, luigid, tmp_path):
    """A wrong token fails the run at once; the next run with the right token works at once: no task is
    ever disabled (luigid would keep it disabled for a day)."""
    failed, seconds = luigi_command(pipeline, tmp_path, luigid, "CuratedTweets", "--date", "2022-09-12",
                                    env={"X_BEARER_TOKEN": "not-the-token"})
    assert failed.returncode == 30, failed.stderr[-2000:]
    assert failed.stderr.strip().splitlines()[-1].startswith("flixluigi: ApiAvailable failed: X API rejected the bearer token")
    assert seconds < 60, "a check no retry can fix ends the run, it does not wait for scheduler retries"
    assert tasks(luigid, "DISABLED") == {}
    assert [t for t in tasks(luigid, "FAILED").values() if t["name"] == "ApiAvailable"]
    worked, _ = luigi_command(pipeline, tmp_path, luigid, "CuratedTweets", "--date", "2022-09-12")
    assert worked.returncode == 0, worked.stderr[-2000:]
    assert curated(pipeline.seaweed.endpoint, pipeline.run).num_rows > 0


@pytest.mark.parametrize("central", [True, False], ids=["shared-luigid", "two-local-schedulers"])
def test_two_runs_of_the_same_day_end_with_one_correct_day(pipeline, luigid, tmp_path, central):
    cfg = pipeline.write_cfg(tmp_path / "luigi.cfg")
    scheduler = ["--scheduler-host", "127.0.0.1", "--scheduler-port", str(luigid)] if central else ["--local-scheduler"]
    command = [LUIGI, "--module", "flixluigi", "CuratedTweets", "--date", "2022-09-12", *scheduler, "--no-lock"]
    runs = [subprocess.Popen(command, env={**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}, cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [run.communicate(timeout=300) for run in runs]
    codes = sorted(run.returncode for run in runs)
    # Under luigid the two runs share the work: a run whose tasks another run is doing exits 10
    # (already_running) or 25 (not_run: the x_api resource or a check was held by the other run).
    # Neither may fail, and the day must be whole.
    assert set(codes) <= {0, 10, 25} if central else codes == [0, 0], [err[-1500:] for _, err in outcomes]
    from datetime import date

    assert verify(date(2022, 9, 12), date(2022, 9, 12)) == []
