"""ApiAvailable -> RawTweets -> CuratedTweets end to end: SeaweedFS and the sandbox over HTTP,
Luigi's real scheduler."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import luigi
import pyarrow as pa
import pytest

from flixluigi import CuratedTweets, RawTweets, config, sandbox
from flixluigi.curate import QualityError
from flixluigi.sandbox.generator import generate_day, newest_versions
from flixluigi.storage import Storage
from flixluigi.xapi import XClient
from tests.conftest import ACCESS_KEY, BUCKET, FIXTURES, HMAC_KEY, SECRET_KEY, TIME_SCALE, TOKEN, api_url
from tests.helpers import all_strings, keys, manifest_key, parquet, raw_pages, s3, sandbox_pages

DAY = date(2022, 9, 12)


def build(*tasks: luigi.Task) -> luigi.execution_summary.LuigiRunResult:
    return luigi.build(list(tasks), local_scheduler=True, detailed_summary=True, workers=1)


def raw_key(p, day=DAY, name="pages.jsonl.gz"):
    return f"{p.run}/raw/tweets/date={day}/{name}"


def curated_key(p, day=DAY, name="tweets.parquet"):
    return f"{p.run}/curated/tweets/date={day}/{name}"


def test_day_end_to_end(pipeline):
    result = build(CuratedTweets(DAY))
    assert result.scheduling_succeeded, result.summary_text
    endpoint = pipeline.seaweed.endpoint

    stored = raw_pages(endpoint, raw_key(pipeline))
    xcfg = config.xapi()
    served = sandbox_pages(api_url(pipeline.api_server), {
        "query": "#FlixBus", "start_time": "2022-09-12T00:00:00Z", "end_time": "2022-09-13T00:00:00Z",
        "max_results": "100", "tweet.fields": xcfg.tweet_fields, "user.fields": xcfg.user_fields,
        "expansions": xcfg.expansions})
    assert [{k: v for k, v in page.items() if k != "__flixluigi"} for page in stored] == served
    assert all(page["__flixluigi"]["status"] == 200 and TOKEN not in str(page["__flixluigi"])
               for page in stored)

    table = parquet(endpoint, curated_key(pipeline))
    expected = generate_day(DAY, 300, 0).tweets
    assert table.column("tweet_id").to_pylist() == [t["id"] for t in newest_versions(expected)]
    assert table.column("text").to_pylist()[5] is not None
    raw_author_ids = {t["author_id"] for t in expected}
    raw_user_ids = raw_author_ids | {m["id"] for t in expected for m in t.get("entities", {}).get("mentions", ())}
    strings = all_strings(table)
    assert not [s for s in strings for uid in raw_user_ids if uid in s]
    assert set(keys(endpoint, f"{pipeline.run}/")) == {
        raw_key(pipeline), manifest_key(pipeline.run, "raw", DAY),
        curated_key(pipeline), manifest_key(pipeline.run, "curated", DAY)}


def test_second_run_fetches_nothing(pipeline):
    assert build(CuratedTweets(DAY)).scheduling_succeeded
    served_before = pipeline.api_server.requests_served
    result = build(CuratedTweets(DAY))
    assert result.scheduling_succeeded
    assert "Did not run any tasks" in result.summary_text
    assert pipeline.api_server.requests_served == served_before


def test_replay_of_recorded_pages(pipeline):
    recording = FIXTURES / "2sets.jsonl"
    replay = sandbox.start(token=TOKEN, replay=(recording,), time_scale=TIME_SCALE)
    try:
        pipeline.set("xapi", "base_url", api_url(replay))
        assert build(CuratedTweets(date(2021, 9, 22))).scheduling_succeeded
    finally:
        replay.shutdown()
    recorded_ids = {t["id"] for page in sandbox.load_pages(recording) for t in page["data"]}
    table = parquet(pipeline.seaweed.endpoint, curated_key(pipeline, date(2021, 9, 22)))
    assert len(recorded_ids) == 200
    assert recorded_ids <= set(table.column("tweet_id").to_pylist())


def assert_failed_with(result, failures, task_family: str, message: str) -> None:
    assert not result.scheduling_succeeded
    messages = [str(exc) for task, exc in failures if task.task_family == task_family]
    assert messages and message in messages[0], messages
    assert "\n" not in messages[0]


def test_api_down(pipeline, failures):
    pipeline.set("xapi", "base_url", "http://127.0.0.1:9")  # discard port: nothing listens
    result = build(CuratedTweets(DAY))
    assert_failed_with(result, failures, "ApiAvailable", "refuses connections")
    assert keys(pipeline.seaweed.endpoint, f"{pipeline.run}/") == []


def test_wrong_token(pipeline, failures, monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", "not-the-token")
    result = build(CuratedTweets(DAY))
    assert_failed_with(result, failures, "ApiAvailable", "rejected the bearer token (HTTP 401: Unauthorized)")
    assert keys(pipeline.seaweed.endpoint, f"{pipeline.run}/") == []


def test_missing_hmac_key_fails_before_any_work(pipeline, failures, monkeypatch):
    monkeypatch.delenv("FLIXLUIGI_HMAC_KEY")
    served = pipeline.api_server.requests_served
    result = build(CuratedTweets(DAY))
    assert_failed_with(result, failures, "Preflight", "no HMAC key: set $FLIXLUIGI_HMAC_KEY")
    assert keys(pipeline.seaweed.endpoint, f"{pipeline.run}/") == []
    assert pipeline.api_server.requests_served == served
    monkeypatch.setenv("FLIXLUIGI_HMAC_KEY", HMAC_KEY)
    assert build(CuratedTweets(DAY)).scheduling_succeeded


def test_failed_day_leaves_a_marker_until_it_succeeds(pipeline):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("flixluigi.days.write_parquet", _raise_quality_error)
        assert not build(CuratedTweets(DAY)).scheduling_succeeded
    failed = manifest_key(pipeline.run, "curated", DAY, failed=True)
    assert keys(pipeline.seaweed.endpoint, f"{pipeline.run}/curated/") == [failed]
    marker = json.loads(s3(pipeline.seaweed.endpoint).get_object(Bucket=BUCKET, Key=failed)["Body"].read())
    assert marker["error"] == "injected quality failure" and marker["task"] == f"CuratedTweets(date={DAY})"
    assert build(CuratedTweets(DAY)).scheduling_succeeded
    assert keys(pipeline.seaweed.endpoint, f"{pipeline.run}/curated/") == sorted(
        [curated_key(pipeline), manifest_key(pipeline.run, "curated", DAY)])


def _raise_quality_error(*args: object, **kwargs: object) -> None:
    raise QualityError("injected quality failure")


def test_missing_bucket(pipeline, failures):
    pipeline.set("storage", "bucket", "no-such-bucket-here")
    result = build(RawTweets(DAY))
    assert not result.scheduling_succeeded
    assert any("bucket 'no-such-bucket-here' does not exist" in str(exc) for _, exc in failures), failures
    assert keys(pipeline.seaweed.endpoint, f"{pipeline.run}/") == []


@pytest.mark.parametrize("day, code", [("2022-09-12", 0), ("2999-01-01", 30)])
def test_luigi_command(pipeline, tmp_path, day, code):
    cfg = pipeline.write_cfg(tmp_path / "luigi.cfg")
    done = subprocess.run([str(Path(sys.executable).parent / "luigi"), "--module", "flixluigi", "CuratedTweets", "--date", day, "--local-scheduler"],
                          env={**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == code, done.stderr[-2000:]
    if code:
        assert "2999-01-01 has not ended yet in UTC" in done.stderr
    else:
        assert keys(pipeline.seaweed.endpoint, curated_key(pipeline)) == [curated_key(pipeline)]


def test_curated_days_read_back_with_hive_partition_discovery(pipeline):
    import pyarrow.dataset as ds
    from pyarrow import fs

    assert build(CuratedTweets(DAY), CuratedTweets(date(2022, 9, 13))).scheduling_succeeded
    s3fs = fs.S3FileSystem(access_key=ACCESS_KEY, secret_key=SECRET_KEY, region="us-east-1", scheme="http",
                           endpoint_override=pipeline.seaweed.endpoint.removeprefix("http://"))
    dataset = ds.dataset(f"{BUCKET}/{pipeline.run}/curated/tweets", filesystem=s3fs, format="parquet",
                         partitioning=ds.partitioning(pa.schema([("date", pa.date32())]), flavor="hive"))
    table = dataset.to_table(filter=ds.field("date") == DAY)
    assert table.num_rows == len(newest_versions(generate_day(DAY, 300, 0).tweets))
    assert set(dataset.to_table(columns=["date"]).column("date").to_pylist()) == {DAY, date(2022, 9, 13)}


def test_no_username_of_the_day_survives_curation(pipeline):
    assert build(CuratedTweets(DAY)).scheduling_succeeded
    generated = generate_day(DAY, 300, 0)
    names = {generated.users[t["author_id"]]["username"].lower() for t in generated.tweets}
    names |= {m["username"].lower() for t in generated.tweets for m in t.get("entities", {}).get("mentions", ())}
    strings = [s.lower() for s in all_strings(parquet(pipeline.seaweed.endpoint, curated_key(pipeline)))]
    assert not [s for s in strings for n in names if "@" + n in s or s == n]


def test_manifest_reconciles_with_counts_and_fail_policy_publishes_nothing(pipeline, failures, monkeypatch):
    assert build(RawTweets(DAY)).scheduling_succeeded
    manifest = json.loads(s3(pipeline.seaweed.endpoint).get_object(
        Bucket=BUCKET, Key=manifest_key(pipeline.run, "raw", DAY))["Body"].read())
    assert manifest["tweets"] == manifest["expected_tweets"] == len(generate_day(DAY, 300, 0).tweets)
    assert manifest["warnings"] == [] and manifest["pages"] == -(-manifest["tweets"] // 100) and manifest["partial_errors"] == 0

    monkeypatch.setattr(XClient, "count", lambda self, *a, **k: 5)
    pipeline.set("xapi", "reconcile", "fail")
    other = date(2022, 9, 14)
    assert not build(RawTweets(other)).scheduling_succeeded
    assert "counts endpoint expects 5" in str(failures[-1][1])
    assert keys(pipeline.seaweed.endpoint, f"{pipeline.run}/raw/") == sorted([
        raw_key(pipeline), manifest_key(pipeline.run, "raw", other, failed=True), manifest_key(pipeline.run, "raw", DAY)])


def test_range_daily_backfills_a_historical_range_from_one_listing(pipeline, monkeypatch):
    from luigi.tools.range import RangeDaily

    pipeline.set("RangeDaily", "days_back", "36500")
    assert build(CuratedTweets(date(2020, 3, 2))).scheduling_succeeded
    calls = []
    original = Storage.complete_days
    monkeypatch.setattr(Storage, "complete_days", lambda self, prefix: calls.append(prefix) or original(self, prefix))
    result = build(RangeDaily(of=CuratedTweets, start=date(2020, 3, 1), stop=date(2020, 3, 4)))
    assert result.scheduling_succeeded, result.summary_text
    assert calls == [f"{pipeline.run}/curated/tweets"]
    days = {k.split("date=")[1][:10] for k in keys(pipeline.seaweed.endpoint, f"{pipeline.run}/curated/")}
    assert days == {"2020-03-01", "2020-03-02", "2020-03-03"}
    served = pipeline.api_server.requests_served
    assert build(RangeDaily(of=CuratedTweets, start=date(2020, 3, 1), stop=date(2020, 3, 4))).scheduling_succeeded
    assert pipeline.api_server.requests_served == served


def test_last_week_asks_for_the_seven_complete_days_before_today():
    from datetime import UTC, datetime, timedelta

    from flixluigi import LastWeek

    today = datetime.now(UTC).date()
    assert [t.date for t in LastWeek().requires()] == [today - timedelta(days=n) for n in range(7, 0, -1)]
