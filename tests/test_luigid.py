"""A short range through a real luigid: the web view's API shows the days DONE with progress."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import BUCKET, ROOT, free_port
from tests.helpers import s3


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


def test_range_through_luigid_reports_progress_and_status(pipeline, luigid, tmp_path):
    pipeline.settings["RangeDaily"] = {"days_back": "36500"}
    cfg = pipeline.write_cfg(tmp_path / "luigi.cfg")
    done = subprocess.run([str(Path(sys.executable).parent / "luigi"), "--module", "flixluigi", "RangeDaily",
                           "--of", "CuratedTweets", "--start", "2021-01-01", "--stop", "2021-01-03",
                           "--scheduler-host", "127.0.0.1", "--scheduler-port", str(luigid)],
                          env={**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    finished = tasks(luigid, "DONE")
    curated = {t["params"]["date"]: t for t in finished.values() if t["name"] == "CuratedTweets"}
    raw = {t["params"]["date"]: t for t in finished.values() if t["name"] == "RawTweets"}
    assert set(curated) == set(raw) == {"2021-01-01", "2021-01-02"}
    for task in curated.values():
        assert task["progress_percentage"] == 100 and task["status_message"].startswith("done: ")
        assert task["status_message"].endswith(" rows")
    for task in raw.values():
        assert task["progress_percentage"] == 100 and " pages, " in task["status_message"]
    assert tasks(luigid, "FAILED") == {}


def test_failure_notification_links_to_the_task_in_luigid(pipeline, luigid, slack, tmp_path):
    cfg = pipeline.write_cfg(tmp_path / "luigi.cfg")
    done = subprocess.run([str(Path(sys.executable).parent / "luigi"), "--module", "flixluigi", "RawTweets",
                           "--date", "2022-09-12", "--scheduler-host", "127.0.0.1", "--scheduler-port", str(luigid)],
                          env={**os.environ, "LUIGI_CONFIG_PATH": str(cfg), "X_BEARER_TOKEN": "not-the-token"},
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 30, done.stderr[-2000:]
    [event] = slack.bodies("/hook")
    assert event["link"].startswith(f"http://127.0.0.1:{luigid}/static/visualiser/index.html#tab=graph&taskId=ApiAvailable__")
    assert event["link"] in slack.bodies("/slack")[0]["text"]
    assert "not-the-token" not in repr(slack.received)
    assert "not-the-token" not in done.stderr + done.stdout, "the token must never reach a log line"


def _day_is_whole_and_consistent(pipeline, day: str) -> None:
    from flixluigi.sandbox.generator import newest_versions
    from tests.helpers import manifest_key, parquet, raw_pages

    endpoint = pipeline.seaweed.endpoint
    posts = tuple(t for p in raw_pages(endpoint, f"{pipeline.run}/raw/tweets/date={day}/pages.jsonl.gz") for t in p.get("data", ()))
    stored = [t["id"] for t in newest_versions(posts)]  # one row per edit chain
    rows = parquet(endpoint, f"{pipeline.run}/curated/tweets/date={day}/tweets.parquet").column("tweet_id").to_pylist()
    manifest = json.loads(s3(endpoint).get_object(Bucket=BUCKET, Key=manifest_key(pipeline.run, "curated", day))["Body"].read())
    assert stored == rows and manifest["rows"] == len(rows) > 0


@pytest.mark.parametrize("central", [True, False], ids=["shared-luigid", "two-local-schedulers"])
def test_two_workers_on_the_same_day_end_with_one_correct_day(pipeline, luigid, tmp_path, central):
    cfg = pipeline.write_cfg(tmp_path / "luigi.cfg")
    scheduler = ["--scheduler-host", "127.0.0.1", "--scheduler-port", str(luigid)] if central else ["--local-scheduler"]
    command = [str(Path(sys.executable).parent / "luigi"), "--module", "flixluigi", "CuratedTweets", "--date", "2022-09-12",
               *scheduler, "--no-lock"]
    workers = [subprocess.Popen(command, env={**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [worker.communicate(timeout=300) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], [err[-1500:] for _, err in outcomes]
    if central:
        ran = [err.count("done      CuratedTweets(date=2022-09-12)") for _, err in outcomes]
        assert sorted(ran) == [0, 1], "luigid hands the day to exactly one worker"
    _day_is_whole_and_consistent(pipeline, "2022-09-12")
