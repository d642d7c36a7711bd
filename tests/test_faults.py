"""Fault injection: workers SIGKILLed at each step of a day, commits held in flight and killed,
commits refused, S3 gone mid-run, the API slow or garbage.

After each fault `flixluigi verify` finds nothing or exactly the day left stale, no local file
holds raw content, and the next normal run (never a Reprocess) makes the range verify clean and
equal to a run nothing disturbed. Killed workers run `luigi` as a process of its own with
`--workers 2` (tests/kill_worker.py): deltalake's runtime does not survive a fork of this process.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import threading
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from luigi.execution_summary import LuigiStatusCode

from devkit.sandbox.generator import generate_day
from flixluigi import Backfill, CuratedTweets, RawTweets, Reprocess
from flixluigi.ops.status import verify
from tests import kill_worker
from tests.conftest import BUCKET, HMAC_KEY
from tests.faultproxy import FaultProxy, Rule
from tests.helpers import build, curated, current_fetch, failure_key, fetches, keys, pointers, raw_pages, records, s3, table

DAY, NEXT = date(2022, 9, 12), date(2022, 9, 13)
ROTATED = "rotated-hmac-key-fedcba9876543210fedcba98"
LOG_ENTRY = r"/_delta_log/\d{20}\.json$"
KILLED = 30  # `luigi`'s exit code when a task failed: the task whose worker was killed
# Differ between any two runs by design: when the rows were made, and the build id (it names the raw fetch).
PER_RUN = ("processed_at", "build_id")
pytestmark = pytest.mark.faults


def comparable(rows: pa.Table) -> list[dict]:
    """Every column but the per-run ones, in tweet id order (the table keeps no order)."""
    return rows.drop_columns(list(PER_RUN)).sort_by("tweet_id").to_pylist()


_undisturbed: dict[tuple[date, str], list[dict]] = {}


def undisturbed(pipeline, day: date, key: str) -> list[dict]:
    """The day as a run that nothing disturbed curates it with `key` (under prefixes of its own)."""
    if (day, key) not in _undisturbed:
        saved = dict(pipeline.settings["storage"])
        run = f"{pipeline.run}-undisturbed"
        try:
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("FLIXLUIGI_HMAC_KEY", key)
                for name, prefix in (("raw_prefix", "raw/tweets"), ("curated_prefix", "curated/tweets"), ("records_prefix", "records")):
                    pipeline.set("storage", name, f"{run}/{prefix}")
                assert build(CuratedTweets(day)).status == LuigiStatusCode.SUCCESS
        finally:
            for name, value in saved.items():
                pipeline.set("storage", name, value)
        _undisturbed[(day, key)] = comparable(curated(pipeline.seaweed.endpoint, run, day))
        assert _undisturbed[(day, key)], "the undisturbed run made no rows"
    return _undisturbed[(day, key)]


def assert_as_undisturbed(pipeline, days: list[date], key: str = HMAC_KEY) -> None:
    for day in days:
        assert comparable(curated(pipeline.seaweed.endpoint, pipeline.run, day)) == undisturbed(pipeline, day, key), day


def assert_no_raw_content(tmpdir: Path, day: date) -> None:
    """Nothing the run left in its TMPDIR holds a post of the day or compressed data."""
    ids = [t["id"].encode() for t in generate_day(day, 300, 0).tweets]
    for path in (p for p in tmpdir.rglob("*") if p.is_file()):
        data = path.read_bytes()
        assert not data.startswith((b"\x1f\x8b", b"\x28\xb5\x2f\xfd")), f"compressed data left in {path}"
        assert not [i for i in ids if i in data], f"raw posts left in {path}"


def assert_killed(done) -> None:
    assert done.returncode == KILLED and "died unexpectedly with exit code -9" in done.stderr, done.stderr[-3000:]


def assert_only_stale(start: date, end: date, day: date) -> None:
    """`flixluigi verify` finds one problem in the range: the day is not built from its current build."""
    (line,) = verify(start, end)
    assert re.fullmatch(rf"{day}: curated day is not built from the current build [0-9a-f]{{16}} "
                        rf"\(raw fetch [0-9TZ]+-[0-9a-f]+\); run CuratedTweets --date {day}", line), line


def since_now() -> datetime:
    """Reprocess's --since as a command started now has it (in this process the default is when it started)."""
    return datetime.now(UTC).replace(tzinfo=None)


@pytest.mark.parametrize("point, fetch_objects", [("fetch", 0), ("pointer", 1)], ids=["mid-fetch", "between-object-and-pointer"])
def test_worker_killed_in_a_raw_fetch(pipeline, tmp_path, point, fetch_objects):
    """A fetch killed mid-upload leaves no object; killed before its pointer, an object nothing names.
    Neither leaves a local file with raw content: uploads go from memory."""
    endpoint = pipeline.seaweed.endpoint
    killed = kill_worker.run(pipeline, tmp_path / "killed", "CuratedTweets", "--date", str(DAY), "--workers", "2", point=point)
    assert_killed(killed)
    assert len(fetches(endpoint, pipeline.run, DAY)) == fetch_objects
    assert pointers(endpoint, pipeline.run, DAY) == [] and keys(endpoint, f"{pipeline.run}/curated/") == []
    assert_no_raw_content(tmp_path / "killed" / "tmp", DAY)
    assert verify(DAY, DAY) == [f"{DAY}: missing: no raw fetch and no curated day stored; run luigi --module flixluigi "
                                f"CuratedTweets --date {DAY}"]  # missing, nothing half-written

    assert build(CuratedTweets(DAY)).status == LuigiStatusCode.SUCCESS
    assert verify(DAY, DAY) == []
    assert len(fetches(endpoint, pipeline.run, DAY)) == fetch_objects + 1
    assert_as_undisturbed(pipeline, [DAY])


@pytest.mark.parametrize("then", ["forward", "reset"], ids=["commit-lands-after-the-kill", "commit-lost"])
def test_worker_killed_while_its_commit_is_in_flight(pipeline, tmp_path, then):
    """The commit's log PUT is held in the proxy, the worker is killed, then the PUT reaches the store
    or is lost. Either way the day is stale (no record names its build) until the next run."""
    endpoint = pipeline.seaweed.endpoint
    assert build(CuratedTweets(DAY)).status == LuigiStatusCode.SUCCESS
    with FaultProxy(endpoint) as proxy:
        pipeline.set("s3", "endpoint_url", proxy.url)
        commit = proxy.add(Rule("PUT", LOG_ENTRY, "hold", then=then))
        worker = kill_worker.start(pipeline, tmp_path / "killed", "CuratedTweets", "--date", str(NEXT), "--workers", "2")
        try:
            assert commit.reached.wait(60), "the commit never came"
            running = kill_worker.children(worker.pid)  # the task held at its commit (and any ending just now)
            assert running
            for child in running:
                os.kill(child, signal.SIGKILL)
            _, stderr = worker.communicate(timeout=60)
        finally:
            if worker.poll() is None:
                worker.kill()
        assert worker.returncode == KILLED, stderr[-3000:]
        commit.release.set()
        assert commit.done.wait(30)
        (put,) = proxy.requests("PUT", LOG_ENTRY)
    pipeline.set("s3", "endpoint_url", endpoint)
    assert put.status == (200 if then == "forward" else None)
    versions = [entry["version"] for entry in table(endpoint, pipeline.run).history()]
    assert versions == ([1, 0] if then == "forward" else [0])
    assert records(endpoint, pipeline.run, NEXT) == []
    assert_only_stale(DAY, NEXT, NEXT)

    assert build(CuratedTweets(NEXT)).status == LuigiStatusCode.SUCCESS
    assert verify(DAY, NEXT) == []
    assert_as_undisturbed(pipeline, [DAY, NEXT])


@pytest.mark.parametrize("refetch", [False, True], ids=["from-stored-raw-under-a-rotated-key", "refetch"])
def test_worker_killed_inside_a_reprocess_of_a_range(pipeline, tmp_path, monkeypatch, refetch):
    """The range's last day dies as its rows are made. The first day is rebuilt, the last is stale
    (old key, or built from the fetch the refetch replaced); a normal run rebuilds it from stored raw."""
    endpoint = pipeline.seaweed.endpoint
    assert build(CuratedTweets(DAY), CuratedTweets(NEXT)).status == LuigiStatusCode.SUCCESS
    before = {day: current_fetch(endpoint, pipeline.run, day) for day in (DAY, NEXT)}
    key = HMAC_KEY if refetch else ROTATED
    monkeypatch.setenv("FLIXLUIGI_HMAC_KEY", key)
    killed = kill_worker.run(pipeline, tmp_path / "killed", "Reprocess", "--start", str(DAY), "--end", str(NEXT), "--workers", "2",
                             *(["--refetch"] if refetch else []), point=f"curation@{NEXT}")
    assert_killed(killed)
    assert_no_raw_content(tmp_path / "killed" / "tmp", NEXT)
    moved = {day for day in (DAY, NEXT) if current_fetch(endpoint, pipeline.run, day) != before[day]}
    assert moved == ({DAY, NEXT} if refetch else set())
    assert_only_stale(DAY, NEXT, NEXT)

    served = pipeline.api_server.requests_served
    assert build(Backfill(start=DAY, end=NEXT)).status == LuigiStatusCode.SUCCESS
    assert pipeline.api_server.requests_served == served, "the stale day is rebuilt from stored raw"
    assert verify(DAY, NEXT) == []
    assert_as_undisturbed(pipeline, [DAY, NEXT], key)


def test_a_commit_that_fails_leaves_nothing_a_delta_reader_sees(pipeline, failures):
    """S3 answers 503 to the commit until delta-rs gives up: the day's data files are in the bucket,
    but no version names them, so readers see the table as it was."""
    endpoint = pipeline.seaweed.endpoint
    assert build(CuratedTweets(DAY)).status == LuigiStatusCode.SUCCESS
    assert build(RawTweets(NEXT)).status == LuigiStatusCode.SUCCESS
    before = curated(endpoint, pipeline.run)
    pipeline.set("days", "tries", "1")
    with FaultProxy(endpoint) as proxy:
        pipeline.set("s3", "endpoint_url", proxy.url)
        refused = proxy.add(Rule("PUT", LOG_ENTRY, "503", times=0))
        result = build(CuratedTweets(NEXT))
    pipeline.set("s3", "endpoint_url", endpoint)
    assert result.status == LuigiStatusCode.FAILED, result.summary_text
    assert refused.acted > 1, "delta-rs retries a 503 before it gives up"
    error = str(failures[-1][1])
    assert error.startswith(f"the curated table s3://{BUCKET}/{pipeline.run}/curated/tweets is unreachable")
    assert "\n" not in error and "\x1b" not in error, error
    assert table(endpoint, pipeline.run).version() == 0
    assert curated(endpoint, pipeline.run).equals(before)
    assert keys(endpoint, f"{pipeline.run}/curated/tweets/date={NEXT}/"), "the uncommitted data files were written"
    assert records(endpoint, pipeline.run, NEXT) == []
    marker = json.loads(s3(endpoint).get_object(Bucket=BUCKET, Key=failure_key(pipeline.run, "CuratedTweets", NEXT))["Body"].read())
    assert marker["error"] == error

    assert build(CuratedTweets(NEXT)).status == LuigiStatusCode.SUCCESS
    assert verify(DAY, NEXT) == []
    assert_as_undisturbed(pipeline, [DAY, NEXT])


def bad_refetch(pipeline, day: date) -> None:
    """A newer fetch of the day whose last page holds a post of the next day, made current."""
    endpoint = pipeline.seaweed.endpoint
    pages = raw_pages(endpoint, current_fetch(endpoint, pipeline.run, day))
    pages[-1]["data"].append({**pages[-1]["data"][-1], "id": "1", "created_at": f"{NEXT}T00:00:01.000Z"})
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    fetch_id = f"{stamp}-0badf00d"
    key = f"{pipeline.run}/raw/tweets/date={day}/fetch={fetch_id}.jsonl.gz"
    client = s3(endpoint)
    client.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(b"".join(json.dumps(p).encode() + b"\n" for p in pages)))
    client.put_object(Bucket=BUCKET, Key=f"{pipeline.run}/raw/tweets/_pointers/date={day}/{stamp}--{fetch_id}.json",
                      Body=json.dumps({"date": str(day), "fetch": fetch_id, "object": key}).encode())


@pytest.mark.parametrize("fault", ["quality-gate-stops-the-stream", "commit-refused"])
def test_a_failed_reprocess_leaves_the_previous_version_current(pipeline, failures, monkeypatch, fault):
    endpoint = pipeline.seaweed.endpoint
    assert build(CuratedTweets(DAY)).status == LuigiStatusCode.SUCCESS
    before, history = curated(endpoint, pipeline.run, DAY), table(endpoint, pipeline.run).history()
    pipeline.set("days", "tries", "1")
    with FaultProxy(endpoint) as proxy:
        if fault == "commit-refused":
            monkeypatch.setenv("FLIXLUIGI_HMAC_KEY", ROTATED)
            pipeline.set("s3", "endpoint_url", proxy.url)
            proxy.add(Rule("PUT", LOG_ENTRY, "503", times=0))
        else:
            bad_refetch(pipeline, DAY)
        result = build(Reprocess(start=DAY, since=since_now()))
    pipeline.set("s3", "endpoint_url", endpoint)
    assert result.status == LuigiStatusCode.FAILED, result.summary_text
    expected = "is outside 2022-09-12" if fault.startswith("quality") else "is unreachable"
    assert expected in str(failures[-1][1])
    assert table(endpoint, pipeline.run).history() == history
    assert curated(endpoint, pipeline.run, DAY).equals(before)
    assert len(records(endpoint, pipeline.run, DAY)) == 1


@pytest.mark.parametrize("action", ["truncate", "reset"])
def test_a_raw_download_cut_short_is_retried_and_the_day_completes(pipeline, action):
    """The raw fetch's GET is cut off mid-body (the day's try fails with a transient error and is
    retried) or reset before any answer (botocore retries the request). Curation reads the fetch
    twice: the day's identities first, then its rows."""
    endpoint = pipeline.seaweed.endpoint
    assert build(RawTweets(DAY)).status == LuigiStatusCode.SUCCESS
    with FaultProxy(endpoint) as proxy:
        pipeline.set("s3", "endpoint_url", proxy.url)
        cut = proxy.add(Rule("GET", rf"/date={DAY}/fetch=", action))
        result = build(CuratedTweets(DAY))
        downloads = proxy.requests("GET", rf"/date={DAY}/fetch=")
    pipeline.set("s3", "endpoint_url", endpoint)
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    assert cut.acted == 1 and [d.action for d in downloads] == [action, "forward", "forward"]
    assert verify(DAY, DAY) == []
    assert_as_undisturbed(pipeline, [DAY])


def test_s3_gone_mid_run_fails_in_one_line_and_the_next_run_completes(pipeline, failures):
    """S3 stops answering as the raw day's upload starts: the day fails with the fix, nothing is
    published, and the next run makes the day whole."""
    endpoint = pipeline.seaweed.endpoint
    pipeline.set("storage", "s3_max_attempts", "1")
    with FaultProxy(endpoint) as proxy:
        pipeline.set("s3", "endpoint_url", proxy.url)
        upload = proxy.add(Rule("POST", r"/date=2022-09-12/fetch=", "hold", then="reset"))

        def s3_goes_down() -> None:
            if upload.reached.wait(60):
                proxy.add(Rule("*", "", "reset", times=0))
            upload.release.set()

        threading.Thread(target=s3_goes_down, daemon=True).start()
        result = build(CuratedTweets(DAY))
    pipeline.set("s3", "endpoint_url", endpoint)
    assert result.status == LuigiStatusCode.FAILED, result.summary_text
    errors = [str(exc) for task, exc in failures if task.task_family == "RawTweets"]
    assert errors == [f"S3 endpoint {proxy.url} is unreachable; start it (scripts/seaweedfs.sh start) or fix [s3] endpoint_url"]
    # Nothing of the day: no raw fetch, pointer or table (the month's counts, fetched before, may stay).
    assert [k for k in keys(endpoint, f"{pipeline.run}/") if "/records/counts/" not in k] == []
    assert build(CuratedTweets(DAY)).status == LuigiStatusCode.SUCCESS
    assert verify(DAY, DAY) == []


@pytest.mark.parametrize("trouble, error", [
    ({"rate": 1.0, "kinds": ("truncate",)}, "incomplete JSON body from /2/tweets/counts/all"),
    ({"rate": 1.0, "kinds": ("slow",), "slow_seconds": 1.5}, "no answer from http://127.0.0.1:"),
    ({"rate": 1.0, "kinds": ("503",)}, "HTTP 503 from /2/tweets/counts/all: Service Unavailable"),
])
def test_api_slow_or_garbage_fails_clearly_with_nothing_published(pipeline, failures, api_server, trouble, error):
    pipeline.set("xapi", "max_tries", "2")
    pipeline.set("xapi", "timeout", "0.5")
    pipeline.set("days", "tries", "1")
    faults = api_server.faults
    saved = (faults.rate, faults.kinds, faults.slow_seconds)
    for name, value in trouble.items():
        setattr(faults, name, value)
    try:
        result = build(CuratedTweets(DAY))
    finally:
        faults.rate, faults.kinds, faults.slow_seconds = saved
    assert result.status == LuigiStatusCode.FAILED
    assert error in str(failures[-1][1])
    assert keys(pipeline.seaweed.endpoint, f"{pipeline.run}/") == []
