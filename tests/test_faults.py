"""Fault injection: a worker SIGKILLed mid-day, S3 stopped mid-run. Nothing partial is ever
visible at a final key, and the next run completes the day as if nothing had happened."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flixluigi.sandbox.generator import generate_day, newest_versions
from tests.conftest import BUCKET, ROOT, Seaweed
from tests.helpers import keys, manifest_key, parquet, raw_pages, s3

DAY = date(2022, 9, 12)
LUIGI = str(Path(sys.executable).parent / "luigi")
pytestmark = pytest.mark.faults


def run_luigi(pipeline, tmp_path, *args, env=None, wrapper=None, timeout=300):
    cfg = pipeline.write_cfg(tmp_path / "luigi.cfg")
    command = [sys.executable, str(ROOT / "tests" / "kill_worker.py"), wrapper, *args] if wrapper else \
        [LUIGI, "--module", "flixluigi", *args, "--local-scheduler"]
    return subprocess.run(command, env={**os.environ, "LUIGI_CONFIG_PATH": str(cfg), "PYTHONPATH": str(ROOT), **(env or {})},
                          cwd=tmp_path, capture_output=True, text=True, timeout=timeout)


def assert_whole(endpoint: str, present: list[str]) -> None:
    """Every object at a final key is complete: gzip streams end, Parquet footers parse."""
    client = s3(endpoint)
    for key in present:
        data = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        if key.endswith(".gz"):
            gzip.decompress(data)
        elif key.endswith(".parquet"):
            pq.read_table(io.BytesIO(data))


@pytest.mark.parametrize("point, survivors", [
    ("fetch", []),
    ("raw-upload", []),
    ("raw-manifest", ["raw"]),
    ("curation", ["raw", "raw-manifest"]),
    ("curated-upload", ["raw", "raw-manifest"]),
])
def test_killed_worker_leaves_nothing_partial_and_the_rerun_completes(pipeline, tmp_path, point, survivors):
    endpoint = pipeline.seaweed.endpoint
    killed = run_luigi(pipeline, tmp_path, "CuratedTweets", "--date", str(DAY), wrapper=point)
    assert killed.returncode == -9, killed.stderr[-2000:]
    present = keys(endpoint, f"{pipeline.run}/")
    expected = {"raw": f"{pipeline.run}/raw/tweets/date={DAY}/pages.jsonl.gz",
                "raw-manifest": manifest_key(pipeline.run, "raw", DAY)}
    assert present == sorted(expected[name] for name in survivors)
    assert_whole(endpoint, present)

    rerun = run_luigi(pipeline, tmp_path, "CuratedTweets", "--date", str(DAY))
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    tweets = generate_day(DAY, 300, 0).tweets
    stored = [t["id"] for page in raw_pages(endpoint, expected["raw"]) for t in page.get("data", ())]
    assert stored == [t["id"] for t in tweets]
    table = parquet(endpoint, f"{pipeline.run}/curated/tweets/date={DAY}/tweets.parquet")
    assert table.column("tweet_id").to_pylist() == [t["id"] for t in newest_versions(tweets)]


def test_s3_stopped_mid_run_fails_clearly_and_the_rerun_completes(pipeline, tmp_path, slack, api_server):
    store = Seaweed(tmp_path / "seaweed")
    store.run("start")
    try:
        pipeline.set("s3", "endpoint_url", store.endpoint)
        slow = api_server.faults
        slow.rate, slow.kinds, slow.slow_seconds = 1.0, ("slow",), 0.4
        try:
            worker = subprocess.Popen(
                [LUIGI, "--module", "flixluigi", "CuratedTweets", "--date", str(DAY), "--local-scheduler"],
                env={**os.environ, "LUIGI_CONFIG_PATH": str(pipeline.write_cfg(tmp_path / "luigi.cfg"))},
                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            served = api_server.requests_served
            deadline = time.monotonic() + 60
            while api_server.requests_served < served + 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            store.run("stop")
        finally:
            slow.rate = 0.0
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 30, stderr[-2000:]
        [event] = [e for e in slack.bodies("/hook") if e["event"] == "failure"]
        assert event["task_family"] == "RawTweets" and event["day"] == str(DAY)
        assert event["error"] == f"S3 endpoint {store.endpoint} is unreachable; start it (scripts/seaweedfs.sh start) " \
                                 "or fix [s3] endpoint_url"

        store.run("start")
        rerun = run_luigi(pipeline, tmp_path, "CuratedTweets", "--date", str(DAY))
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert manifest_key(pipeline.run, "curated", DAY) in keys(store.endpoint, f"{pipeline.run}/")
    finally:
        store.run("stop")


@pytest.mark.parametrize("trouble, error", [
    ({"rate": 1.0, "kinds": ("truncate",)}, "incomplete JSON body from /2/tweets/counts/all (HTTP 200)"),
    ({"rate": 1.0, "kinds": ("slow",), "slow_seconds": 1.5}, "no answer from http://127.0.0.1:"),
    ({"rate": 1.0, "kinds": ("503",)}, "HTTP 503 from /2/tweets/counts/all: Service Unavailable"),
])
def test_sandbox_slow_or_garbage_fails_clearly_with_nothing_written(pipeline, slack, failures, api_server, trouble, error):
    import luigi

    from flixluigi import CuratedTweets

    pipeline.set("xapi", "max_tries", "2")
    pipeline.set("xapi", "timeout", "0.5")
    faults = api_server.faults
    saved = (faults.rate, faults.kinds, faults.slow_seconds)
    for name, value in trouble.items():
        setattr(faults, name, value)
    try:
        result = luigi.build([CuratedTweets(DAY)], local_scheduler=True, detailed_summary=True)
    finally:
        faults.rate, faults.kinds, faults.slow_seconds = saved
    assert not result.scheduling_succeeded
    assert error in str(failures[-1][1])
    [event] = [e for e in slack.bodies("/hook") if e["event"] == "failure"]
    assert error in event["error"]
    assert keys(pipeline.seaweed.endpoint, f"{pipeline.run}/") == []
