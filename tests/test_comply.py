"""Compliance over stored days: the batch compliance API of the sandbox over HTTP, SeaweedFS, real tasks."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from devkit import sandbox
from devkit.sandbox.compliance import ComplianceConfig
from devkit.sandbox.generator import generate_day
from flixluigi import Compliance, CuratedTweets
from flixluigi.ops.status import verify
from tests.conftest import TIME_SCALE, TOKEN, api_url
from tests.helpers import all_strings, body, build, curated, fetches, keys, parquet_of, pointers, raw_pages, records, table

DAYS = [date(2022, 9, 12), date(2022, 9, 13), date(2022, 9, 14)]


@pytest.fixture
def stored(pipeline):
    """Three curated days, and compliance settings that apply at once."""
    assert build(*(CuratedTweets(day) for day in DAYS)).scheduling_succeeded
    pipeline.set("compliance", "poll_interval", "0.01")
    pipeline.set("compliance", "purge_after_hours", "0")
    pipeline.set("storage", "min_file_age_hours", "0")
    return pipeline


def with_compliance(pipeline, compliance: ComplianceConfig) -> sandbox.SandboxServer:
    server = sandbox.start(token=TOKEN, volume=300, compliance=compliance, time_scale=TIME_SCALE)
    pipeline.set("xapi", "base_url", api_url(server))
    return server


def everything_stored(pipeline) -> list[str]:
    """Every string of every raw fetch and of every Parquet file the table folder still holds."""
    endpoint, strings = pipeline.seaweed.endpoint, []
    for day in DAYS:
        for key in fetches(endpoint, pipeline.run, day):
            strings.append(repr(raw_pages(endpoint, key)))
    for key in keys(endpoint, f"{pipeline.run}/curated/tweets/"):
        if key.endswith(".parquet"):
            strings += all_strings(parquet_of(body(endpoint, key)))
    return strings


def test_compliance_removes_posts_and_users_everywhere_and_purges_history(stored, failures):
    first, second = generate_day(DAYS[0], 300, 0), generate_day(DAYS[1], 300, 0)
    deleted, protected = first.tweets[3]["id"], first.tweets[10]["id"]
    suspended = second.tweets[5]["author_id"]
    server = with_compliance(stored, ComplianceConfig(tweets={deleted: "deleted", protected: "protected"},
                                                      users={suspended: "suspended"}))
    endpoint = stored.seaweed.endpoint
    try:
        untouched_pointers = pointers(endpoint, stored.run, DAYS[2])
        result = build(Compliance(start=DAYS[0], end=DAYS[2]))
        assert result.scheduling_succeeded, result.summary_text
        rows = curated(endpoint, stored.run)
        assert deleted not in rows.column("tweet_id").to_pylist() and protected not in rows.column("tweet_id").to_pylist()
        assert len(records(endpoint, stored.run, DAYS[0])) == 2, "the affected day is one new commit"
        assert pointers(endpoint, stored.run, DAYS[2]) == untouched_pointers, "an unaffected day is not rewritten"
        assert [r["rows"] for r in records(endpoint, stored.run, DAYS[0])][-1] == len(first.tweets) - 2
        # Purge window 0: no removed post in any retained version or raw fetch, and no profile of the
        # suspended user in any raw fetch (other users' posts that mention them are their own content).
        leftovers = everything_stored(stored)
        assert not [s for s in leftovers if deleted in s or protected in s]
        profiles = [u for day in DAYS for key in fetches(endpoint, stored.run, day) for page in raw_pages(endpoint, key)
                    for u in page.get("includes", {}).get("users", ()) if u["id"] == suspended]
        assert profiles and all(set(u) == {"id"} for u in profiles)
        assert verify(DAYS[0], DAYS[2]) == []
        # Rerun: a no-op.
        versions = table(endpoint, stored.run).version()
        assert build(Compliance(start=DAYS[0], end=DAYS[2], since=datetime.now(UTC).replace(tzinfo=None))).scheduling_succeeded
        assert table(endpoint, stored.run).version() == versions
        state = json.loads(body(endpoint, f"{stored.run}/records/compliance/state.json"))
        assert state["days"]["2022-09-12"]["removed"]["tweets"] == {"deleted": 1, "protected": 1}
        ledger = body(endpoint, f"{stored.run}/records/compliance/ledger.json").decode()
        assert deleted not in ledger and suspended not in ledger, "the ledger holds keyed hashes, never raw ids"
    finally:
        server.shutdown()
    assert failures == []


@pytest.mark.faults
@pytest.mark.parametrize("outcome", ["failed", "expired"])
def test_a_failed_job_changes_nothing_and_says_so_in_one_line(stored, failures, outcome):
    first = generate_day(DAYS[0], 300, 0)
    server = with_compliance(stored, ComplianceConfig(tweets={first.tweets[3]["id"]: "deleted"}, outcomes={1: outcome}))
    endpoint = stored.seaweed.endpoint
    before = (keys(endpoint, f"{stored.run}/raw/"), table(endpoint, stored.run).version())
    try:
        stored.set("days", "tries", "1")
        assert not build(Compliance(start=DAYS[0], end=DAYS[2])).scheduling_succeeded
    finally:
        server.shutdown()
    (message,) = [str(exc) for task, exc in failures if task.task_family == "Compliance"]
    assert outcome in message and "\n" not in message
    assert (keys(endpoint, f"{stored.run}/raw/"), table(endpoint, stored.run).version()) == before

