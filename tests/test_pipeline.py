"""ApiAvailable -> RawTweets -> CuratedTweets end to end: SeaweedFS and the sandbox over HTTP,
Luigi's real scheduler."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from devkit import sandbox
from devkit.sandbox.generator import generate_day, newest_versions
from flixluigi import CuratedTweets, RawTweets, config
from flixluigi.errors import QualityError
from flixluigi.store.s3 import Storage
from flixluigi.xapi.client import XClient
from tests.conftest import FIXTURES, HMAC_KEY, TIME_SCALE, TOKEN, api_url
from tests.helpers import (
    all_strings,
    body,
    build,
    curated,
    current_fetch,
    failure_key,
    fetches,
    keys,
    pointers,
    raw_pages,
    records,
    sandbox_pages,
    table,
)

DAY = date(2022, 9, 12)


def test_day_end_to_end(pipeline):
    result = build(CuratedTweets(DAY))
    assert result.scheduling_succeeded, result.summary_text
    endpoint = pipeline.seaweed.endpoint

    stored = raw_pages(endpoint, current_fetch(endpoint, pipeline.run, DAY))
    xcfg = config.xapi()
    served = sandbox_pages(api_url(pipeline.api_server), {
        "query": "#FlixBus", "start_time": "2022-09-12T00:00:00Z", "end_time": "2022-09-13T00:00:00Z",
        "max_results": "100", "tweet.fields": xcfg.tweet_fields, "user.fields": xcfg.user_fields,
        "expansions": xcfg.expansions})
    assert [{k: v for k, v in page.items() if k != "__flixluigi"} for page in stored] == served
    assert all(page["__flixluigi"]["status"] == 200 and TOKEN not in str(page["__flixluigi"])
               for page in stored)

    table = curated(endpoint, pipeline.run, DAY)
    expected = generate_day(DAY, 300, 0).tweets
    assert sorted(table.column("tweet_id").to_pylist()) == sorted(t["id"] for t in newest_versions(expected))
    assert table.column("text").to_pylist()[5] is not None
    raw_author_ids = {t["author_id"] for t in expected}
    raw_user_ids = raw_author_ids | {m["id"] for t in expected for m in t.get("entities", {}).get("mentions", ())}
    strings = all_strings(table)
    assert not [s for s in strings for uid in raw_user_ids if uid in s]
    (record,) = records(endpoint, pipeline.run, DAY)
    assert record["rows"] == table.num_rows and set(table.column("build_id").to_pylist()) == {record["build_id"]}
    assert len(fetches(endpoint, pipeline.run, DAY)) == len(pointers(endpoint, pipeline.run, DAY)) == 1
    # Only the table's own files: Parquet data under date=D and the log.
    table_files = keys(endpoint, f"{pipeline.run}/curated/tweets/")
    assert all(("/date=2022-09-12/" in k and k.endswith(".parquet")) or "/_delta_log/" in k for k in table_files), table_files


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
    table = curated(pipeline.seaweed.endpoint, pipeline.run, date(2021, 9, 22))
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
    endpoint = pipeline.seaweed.endpoint
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("flixluigi.work.check_batch", _raise_quality_error)
        assert not build(CuratedTweets(DAY)).scheduling_succeeded
    failed = failure_key(pipeline.run, "CuratedTweets", DAY)
    assert keys(endpoint, f"{pipeline.run}/records/failed/") == [failed]
    assert keys(endpoint, f"{pipeline.run}/records/curated/") == []
    assert keys(endpoint, f"{pipeline.run}/curated/") == [], "a refused day commits nothing"
    marker = json.loads(body(endpoint, failed))
    assert marker["error"] == "injected quality failure" and marker["task"] == f"CuratedTweets(date={DAY})"
    assert build(CuratedTweets(DAY)).scheduling_succeeded
    assert keys(endpoint, f"{pipeline.run}/records/failed/") == []
    assert curated(endpoint, pipeline.run, DAY).num_rows == len(generate_day(DAY, 300, 0).tweets)


def _raise_quality_error(*args: object, **kwargs: object) -> None:
    raise QualityError("injected quality failure")


def test_missing_bucket(pipeline, failures):
    pipeline.set("storage", "bucket", "no-such-bucket-here")
    result = build(RawTweets(DAY))
    assert not result.scheduling_succeeded
    assert any("bucket 'no-such-bucket-here' does not exist" in str(exc) for _, exc in failures), failures
    assert keys(pipeline.seaweed.endpoint, f"{pipeline.run}/") == []


@pytest.mark.parametrize("day, code", [("2022-09-12", 0), ("2999-01-01", 30)])
def test_luigi_command_from_another_directory(pipeline, tmp_path, day, code):
    """No luigi.cfg in the working directory and no [retcode] in the settings file: the package's own
    defaults still make a failed run exit non-zero, and its last line is the reason."""
    cfg = pipeline.write_cfg(tmp_path / "settings" / "flixluigi.cfg")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([str(Path(sys.executable).parent / "luigi"), "--module", "flixluigi", "CuratedTweets", "--date", day,
                           "--local-scheduler"], env={**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}, cwd=elsewhere,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == code, done.stderr[-2000:]
    if code:
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("flixluigi: RawTweets 2999-01-01 failed: 2999-01-01 has not ended yet in UTC"), last
    else:
        assert curated(pipeline.seaweed.endpoint, pipeline.run, DAY).num_rows > 0


def test_curated_table_reads_back_with_duckdb(pipeline):
    assert build(CuratedTweets(DAY), CuratedTweets(date(2022, 9, 13))).scheduling_succeeded
    curated_dataset = table(pipeline.seaweed.endpoint, pipeline.run).to_pyarrow_dataset()  # noqa: F841 - DuckDB scans it by name
    counts = duckdb.sql("select date, count(*) from curated_dataset group by date order by date").fetchall()
    assert counts == [(DAY, len(newest_versions(generate_day(DAY, 300, 0).tweets))),
                      (date(2022, 9, 13), len(newest_versions(generate_day(date(2022, 9, 13), 300, 0).tweets)))]


def test_no_username_of_the_day_survives_curation(pipeline):
    assert build(CuratedTweets(DAY)).scheduling_succeeded
    generated = generate_day(DAY, 300, 0)
    names = {generated.users[t["author_id"]]["username"].lower() for t in generated.tweets}
    names |= {m["username"].lower() for t in generated.tweets for m in t.get("entities", {}).get("mentions", ())}
    strings = [s.lower() for s in all_strings(curated(pipeline.seaweed.endpoint, pipeline.run, DAY))]
    assert not [s for s in strings for n in names if "@" + n in s or s == n]


def test_pointer_reconciles_with_counts_and_fail_policy_publishes_nothing(pipeline, failures, monkeypatch):
    endpoint = pipeline.seaweed.endpoint
    assert build(RawTweets(DAY)).scheduling_succeeded
    (pointer_key,) = pointers(endpoint, pipeline.run, DAY)
    pointer = json.loads(body(endpoint, pointer_key))
    assert pointer["tweets"] == pointer["expected_tweets"] == len(generate_day(DAY, 300, 0).tweets)
    assert pointer["warnings"] == [] and pointer["pages"] == -(-pointer["tweets"] // 100) and pointer["partial_errors"] == 0
    assert pointer["object"] == current_fetch(endpoint, pipeline.run, DAY)

    monkeypatch.setattr(XClient, "daily_counts", lambda self, query, first, last, **k: {
        first + timedelta(days=n): 5 for n in range((last - first).days + 1)})
    pipeline.set("xapi", "reconcile", "fail")
    pipeline.set("xapi", "chain_posts", "0")  # the day alone (5-post counts would chain the rest of its month)
    other = date(2022, 10, 14)  # another month: its counts are fetched (through the patched client) for this day
    assert not build(RawTweets(other)).scheduling_succeeded
    assert "counts endpoint expects 5" in str(failures[-1][1])
    assert fetches(endpoint, pipeline.run, other) == [] and pointers(endpoint, pipeline.run, other) == []
    assert failure_key(pipeline.run, "RawTweets", other) in keys(endpoint, f"{pipeline.run}/records/")


def test_range_daily_backfills_a_historical_range_in_constant_requests(pipeline, monkeypatch):
    from luigi.tools.range import RangeDaily

    assert build(CuratedTweets(date(2020, 3, 2))).scheduling_succeeded
    listings = []
    original = Storage.list
    monkeypatch.setattr(Storage, "list", lambda self, prefix, *span: listings.append(prefix) or original(self, prefix, *span))
    result = build(RangeDaily(of=CuratedTweets, start=date(2020, 3, 1), stop=date(2020, 3, 4)))
    assert result.scheduling_succeeded, result.summary_text
    rows = curated(pipeline.seaweed.endpoint, pipeline.run)
    assert set(rows.column("date").to_pylist()) == {date(2020, 3, 1), date(2020, 3, 2), date(2020, 3, 3)}
    listings.clear()
    served = pipeline.api_server.requests_served
    result = build(RangeDaily(of=CuratedTweets, start=date(2020, 3, 1), stop=date(2020, 3, 4)))
    assert result.scheduling_succeeded and "Did not run any tasks" in result.summary_text
    assert pipeline.api_server.requests_served == served
    # The same RangeDaily object (Luigi's instance cache) keeps the tasks its first build required,
    # and Luigi asks each of those two days again: from that day's own keys, three small listings.
    assert sorted(listings) == sorted(f"{pipeline.run}/{prefix}/date={day}/" for day in ("2020-03-01", "2020-03-03")
                                      for prefix in ("raw/tweets/_pointers", "raw/tweets", "records/curated")), listings


def test_last_week_asks_for_the_seven_complete_days_before_today():
    from datetime import UTC, datetime, timedelta

    from flixluigi import LastWeek

    today = datetime.now(UTC).date()
    assert [t.date for t in LastWeek().requires()] == [today - timedelta(days=n) for n in range(7, 0, -1)]
