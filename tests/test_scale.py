"""Work linear in the days a command touches: completeness of a range from one snapshot, a single
day from its own keys; every request counted by the fault proxy between the code and SeaweedFS."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from luigi.execution_summary import LuigiStatusCode

from devkit.sandbox.compliance import ComplianceConfig
from devkit.sandbox.generator import generate_day
from flixluigi import Backfill, Compliance, CuratedTweets, LastWeek, RawTweets, Reprocess
from flixluigi.curation.schema import SCHEMA_VERSION
from flixluigi.ops.status import verify
from flixluigi.store.lake import CHECKPOINT_INTERVAL
from flixluigi.store.layout import new_fetch_id
from flixluigi.store.s3 import Storage
from flixluigi.store.state import Build, curated_record, layout, point
from flixluigi.work import pseudonymizer, sharing
from tests import kill_worker
from tests.conftest import BUCKET
from tests.faultproxy import FaultProxy
from tests.helpers import body, build, curated, keys, pointers, raw_pages, records, s3, table
from tests.test_comply import with_compliance
from tests.test_faults import since_now

START = date(2021, 1, 1)


def seed(days: list[date]) -> None:
    """Days stored as the pipeline leaves them, for completeness: a fetch object, its pointer, and
    the record of a build from it (the table itself is not read by completeness)."""
    store, where = Storage.from_config(), layout()
    key_id, shared = pseudonymizer().key_id, sharing()
    for day in days:
        fetch_id = new_fetch_id()
        key = where.fetch_key(day, fetch_id)
        store.put_bytes(key, b"")
        point(store, day, fetch_id, {"date": day.isoformat(), "fetch": fetch_id, "object": key, "tweets": 0})
        build_meta = Build(fetch_id, key_id, SCHEMA_VERSION, shared).as_metadata()
        store.put_json(where.record_key(day, build_meta["flixluigi.build_id"]), curated_record(day, build_meta, 1, 0, 0))


@pytest.fixture
def proxy(pipeline):
    """A recording proxy before SeaweedFS; `through` sends the pipeline's requests to it (after seeding directly)."""
    with FaultProxy(pipeline.seaweed.endpoint) as proxy:
        yield proxy


def through(pipeline, proxy: FaultProxy) -> None:
    pipeline.set("s3", "endpoint_url", proxy.url)


def listings(proxy: FaultProxy) -> int:
    return len(proxy.requests("GET", "^$"))


def test_completeness_of_200_days_through_backfill_is_a_constant_number_of_listings(pipeline, proxy):
    days = [START + timedelta(days=n) for n in range(200)]
    seed(days)
    through(pipeline, proxy)
    result = build(Backfill(start=days[0], end=days[-1]))
    assert result.status == LuigiStatusCode.SUCCESS and "Did not run any tasks" in result.summary_text, result.summary_text
    # One listing of the range's pointers, one of its fetches, one of its records (each of <= 1,000
    # keys, each starting at the first day's keys), not one per day.
    assert [s.query.split("start-after=")[1].split("&")[0] for s in proxy.log] == [
        f"{prefix}date={days[0] - timedelta(days=1)}0"
        for prefix in (f"{layout().raw}/_pointers/", f"{layout().raw}/", layout().records_prefix())], proxy.log

    # A later build in this process, with the same (instance-cached) task, sees the store as it is now.
    stale = days[150]
    client = s3(pipeline.seaweed.endpoint)
    prefix = layout().day_records_prefix(stale)
    client.delete_object(Bucket=BUCKET, Key=client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"][0]["Key"])
    proxy.log.clear()
    task = Backfill(start=days[0], end=days[-1])
    assert not task.complete()
    assert [t.date for t in task.requires()] == [stale]
    assert listings(proxy) == 6


def test_a_single_day_lists_only_its_own_keys(pipeline, proxy):
    seed([START, START + timedelta(days=1)])
    through(pipeline, proxy)
    assert CuratedTweets(START).complete()
    where = layout()
    listed = sorted(prefix for s in proxy.log for prefix in s.query.split("&") if prefix.startswith("prefix="))
    assert listed == sorted(f"prefix={p}" for p in (f"{where.raw}/_pointers/date={START}/", f"{where.raw}/date={START}/",
                                                     where.day_records_prefix(START))), proxy.log
    assert len(proxy.log) == 3


def test_last_week_requires_only_its_incomplete_days(pipeline):
    from datetime import UTC, datetime

    today = datetime.now(UTC).date()
    week = [today - timedelta(days=n) for n in range(7, 0, -1)]
    seed(week[:3])
    assert [t.date for t in LastWeek().requires()] == week[3:]
    assert not LastWeek().complete()
    seed(week[3:])
    assert LastWeek().complete() and LastWeek().requires() == []


def test_under_two_workers_each_record_names_the_version_that_wrote_its_day(pipeline, tmp_path):
    days = [date(2022, 9, 1) + timedelta(days=n) for n in range(6)]
    done = kill_worker.run(pipeline, tmp_path, "Backfill", "--start", str(days[0]), "--end", str(days[-1]), "--workers", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    wrote = {entry["version"]: entry.get("flixluigi.day") for entry in table(pipeline.seaweed.endpoint, pipeline.run).history()}
    named = {day: [r["table_version"] for r in records(pipeline.seaweed.endpoint, pipeline.run, day)] for day in days}
    assert all(len(versions) == 1 and wrote[versions[0]] == str(day) for day, versions in named.items()), (named, wrote)


def test_a_table_of_an_earlier_release_gets_the_properties_by_a_commit(pipeline):
    endpoint, run = pipeline.seaweed.endpoint, pipeline.run
    assert build(CuratedTweets(date(2022, 9, 1))).status == LuigiStatusCode.SUCCESS
    old = {"delta.checkpointInterval": "10", "delta.logRetentionDuration": "interval 30 days"}
    table(endpoint, run).alter.set_table_properties(old)  # as 0.3.0 left it
    pipeline.set("storage", "keep_versions_days", "90")
    assert build(CuratedTweets(date(2022, 9, 2))).status == LuigiStatusCode.SUCCESS
    after = table(endpoint, run)
    assert after.metadata().configuration == {"delta.dataSkippingStatsColumns": "date,build_id,created_at",
                                              "delta.checkpointInterval": str(CHECKPOINT_INTERVAL),
                                              "delta.logRetentionDuration": "interval 90 days"}
    newest, properties = after.history(2)
    assert properties["operation"] == "SET TBLPROPERTIES" and newest.get("flixluigi.day") == "2022-09-02"
    assert [r["table_version"] for r in records(endpoint, run, date(2022, 9, 2))] == [newest["version"]]


def test_vacuum_aborts_unfinished_uploads_older_than_the_grace(pipeline):
    from flixluigi.ops import actions

    client, key = s3(pipeline.seaweed.endpoint), f"{layout().raw}/date=2022-09-01/fetch=killed.jsonl.zst"
    upload = client.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    client.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=1, Body=b"half a day")

    def unfinished() -> list[str]:
        return [u["UploadId"] for u in client.list_multipart_uploads(Bucket=BUCKET, Prefix=pipeline.run).get("Uploads", ())]

    assert not any("unfinished upload" in line for line in actions.vacuum(apply=True))  # younger than 24 h
    assert unfinished() == [upload]
    pipeline.set("storage", "min_file_age_hours", "0")
    assert actions.vacuum(apply=False) == [f"would abort the unfinished upload of s3://{BUCKET}/{key}"]
    assert unfinished() == [upload]
    assert actions.vacuum(apply=True) == [f"aborted the unfinished upload of s3://{BUCKET}/{key}"]
    assert unfinished() == []


def test_pages_are_as_full_as_the_endpoint_allows_by_default(pipeline):
    from flixluigi import RawTweets, config

    pipeline.set("xapi", "max_results", "0")  # unset, as luigi.cfg leaves it
    assert config.page_size() == 500
    day = date(2022, 9, 12)
    assert build(RawTweets(day)).status == LuigiStatusCode.SUCCESS
    (pointer,) = [s3(pipeline.seaweed.endpoint).get_object(Bucket=BUCKET, Key=key)["Body"].read()
                  for key in keys(pipeline.seaweed.endpoint, f"{layout().raw}/_pointers/date={day}/")]
    fetched = json.loads(pointer)
    assert fetched["tweets"] > 100 and fetched["pages"] == -(-fetched["tweets"] // 500), fetched
    pipeline.set("xapi", "tweet_fields", f"{config.xapi().tweet_fields},context_annotations")
    assert config.page_size() == 100
    pipeline.set("xapi", "endpoint", "recent")
    assert config.page_size() == 100


def test_a_span_listing_holds_exactly_the_days_of_the_span():
    from flixluigi.store.layout import Layout

    prefix, after, until = Layout.days_between("raw/", date(2022, 9, 10), date(2022, 9, 12))
    keys_ = [f"raw/date={day}/fetch=x.jsonl.zst" for day in ("2022-09-09", "2022-09-10", "2022-09-12", "2022-09-13")]
    assert [key for key in keys_ if key.startswith(prefix) and after < key <= until] == keys_[1:3]
    assert not keys_[1].startswith(after)  # not the first day's folder name: SeaweedFS would skip that folder


CHAIN = [date(2022, 9, 5), date(2022, 9, 6), date(2022, 9, 7)]


@pytest.fixture
def chaining(pipeline):
    """Pages of 500 and chains of up to 1,000 expected posts: three of the sandbox's ~300-post days."""
    pipeline.set("xapi", "max_results", "0")
    pipeline.set("xapi", "chain_posts", "1000")
    return pipeline


def chained_posts(endpoint: str, run: str, day: date) -> tuple[dict, list[str]]:
    """The day's pointer, and the posts its fetch's pages name as the day's."""
    (key,) = pointers(endpoint, run, day)
    pointer = json.loads(body(endpoint, key))
    pages = raw_pages(endpoint, pointer["object"])
    return pointer, [post for page in pages for post in page["__flixluigi"]["chain"]["posts"]]


def test_a_chain_fetches_consecutive_small_days_in_one_request_chain_each_to_its_own_fetch(chaining):
    endpoint, run, api = chaining.seaweed.endpoint, chaining.run, chaining.api_server
    after = CHAIN[-1] + timedelta(days=1)
    chaining.set("xapi", "chain_posts", "0")
    assert build(RawTweets(after)).status == LuigiStatusCode.SUCCESS  # stored alone: a chain stops at it
    chaining.set("xapi", "chain_posts", "1000")
    served = api.requests_served
    # The last day runs first (as luigi may order them): the chain reaches back to its earlier neighbours.
    assert build(RawTweets(CHAIN[-1], chain_from=CHAIN[0], chain_to=CHAIN[-1])).status == LuigiStatusCode.SUCCESS
    pointer, _ = chained_posts(endpoint, run, CHAIN[0])
    searches = pointer["requests"]["/2/tweets/search/all"]
    total = 0
    for day in CHAIN:
        own, posts = chained_posts(endpoint, run, day)
        assert own["chain"] == {"first": str(CHAIN[0]), "last": str(CHAIN[-1]), "days": 3}
        assert own["tweets"] == len(set(posts)) == len(generate_day(day, 300, 0).tweets) and own["fetch"] in own["object"]
        total += own["tweets"]
    assert searches == -(-total // 500), "one chain of full pages, not a chain a day"
    assert api.requests_served - served == searches  # the month's counts and ApiAvailable's check came before
    assert pointers(endpoint, run, CHAIN[0] - timedelta(days=1)) == [] and len(pointers(endpoint, run, after)) == 1
    served = api.requests_served
    assert build(*(CuratedTweets(day) for day in CHAIN)).status == LuigiStatusCode.SUCCESS
    assert api.requests_served == served, "the neighbours found themselves complete"
    rows = curated(endpoint, run)
    assert {day: rows.filter(pc.equal(rows["date"], pa.scalar(day, pa.date32()))).num_rows for day in CHAIN} == \
           {day: len(generate_day(day, 300, 0).tweets) for day in CHAIN}
    assert verify(CHAIN[0], CHAIN[-1]) == []

    # A chained day, reprocessed from its stored fetch and by compliance, is like any other.
    removed = generate_day(CHAIN[1], 300, 0).tweets[4]["id"]
    assert build(Reprocess(start=CHAIN[1], since=since_now())).status == LuigiStatusCode.SUCCESS
    chaining.set("compliance", "poll_interval", "0.01")
    server = with_compliance(chaining, ComplianceConfig(tweets={removed: "deleted"}))
    try:
        assert build(Compliance(start=CHAIN[0], end=CHAIN[-1])).status == LuigiStatusCode.SUCCESS
    finally:
        server.shutdown()
    assert removed not in curated(endpoint, run).column("tweet_id").to_pylist()
    assert verify(CHAIN[0], CHAIN[-1]) == []


def test_a_chain_broken_mid_way_writes_the_days_it_covered_and_fails_the_rest(chaining, failures, monkeypatch):
    from flixluigi.errors import MalformedResponse
    from flixluigi.xapi.client import XClient

    endpoint, run = chaining.seaweed.endpoint, chaining.run
    original, searches = XClient._page, []

    def second_page_refused(self, path, params):
        if "/search/" in path and (params["start_time"], params["end_time"]) == ("2022-09-05T00:00:00Z", "2022-09-08T00:00:00Z"):
            searches.append(path)
            if len(searches) == 2:
                raise MalformedResponse("search answered a page that is not a page (injected)")
        return original(self, path, params)

    monkeypatch.setattr(XClient, "_page", second_page_refused)
    assert build(RawTweets(CHAIN[0], chain_from=CHAIN[0], chain_to=CHAIN[-1])).status == LuigiStatusCode.FAILED
    assert "injected" in str(failures[-1][1]) and failures[-1][0] == RawTweets(CHAIN[0])
    # The first page (the 500 newest posts) holds the whole last day: it is written; the others are not.
    assert [bool(pointers(endpoint, run, day)) for day in CHAIN] == [False, False, True]
    assert build(*(RawTweets(day, chain_from=CHAIN[0], chain_to=CHAIN[-1]) for day in CHAIN)).status == LuigiStatusCode.SUCCESS
    assert [chained_posts(endpoint, run, day)[0].get("chain", {}).get("last") for day in CHAIN] == \
           [str(CHAIN[1]), str(CHAIN[1]), str(CHAIN[2])]


def test_a_fetch_chains_only_days_its_run_asked_for(chaining):
    """A day asked for alone is fetched (and billed) alone; a Backfill chains its own days and no others."""
    endpoint, run = chaining.seaweed.endpoint, chaining.run
    assert build(CuratedTweets(CHAIN[1])).status == LuigiStatusCode.SUCCESS
    assert [len(pointers(endpoint, run, day)) for day in CHAIN] == [0, 1, 0]
    assert "chain" not in json.loads(body(endpoint, pointers(endpoint, run, CHAIN[1])[0]))
    wanted = [date(2022, 9, 20), date(2022, 9, 21)]
    assert build(Backfill(start=wanted[0], end=wanted[-1])).status == LuigiStatusCode.SUCCESS
    for day in wanted:
        assert chained_posts(endpoint, run, day)[0]["chain"] == {"first": "2022-09-20", "last": "2022-09-21", "days": 2}
    assert pointers(endpoint, run, date(2022, 9, 19)) == pointers(endpoint, run, date(2022, 9, 22)) == []
