"""Writers that race, made to interleave exactly: the fault proxy holds the first writer's commit
(its `_delta_log/N.json` PUT) until a second writer has finished, then lets it go.

A commit is a put-if-absent of the next log entry, so the held writer finds its version taken
(412), re-reads the table and either rebases (another day) or loses to a conflict (the same
day); then it re-checks completeness and ends without writing, as the day is done.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import botocore.exceptions
import pytest
from luigi.execution_summary import LuigiStatusCode

from flixluigi import CuratedTweets, RawTweets, Reprocess
from flixluigi.ops import actions
from flixluigi.ops.status import verify
from tests import kill_worker
from tests.conftest import BUCKET
from tests.faultproxy import FaultProxy, Rule
from tests.helpers import body, build, current_fetch, keys, records, s3, table
from tests.test_faults import since_now

OTHER, DAY, NEXT = date(2022, 9, 11), date(2022, 9, 12), date(2022, 9, 13)
LOG_ENTRY = r"/_delta_log/\d{20}\.json$"
pytestmark = pytest.mark.faults


@dataclass
class Held:
    proxy: FaultProxy
    err: str = ""  # the held command's stderr, once it has ended


@contextmanager
def held_at_commit(pipeline, workdir: Path, *args: str, proxied: bool = False) -> Iterator[Held]:
    """`luigi ARGS` in a process of its own, held at its Delta log PUT for the block (its data files
    written, its commit not), then let go and waited for; it must succeed. Inside the block the
    tests' own commands go to the store directly, or through the proxy too (recorded) if `proxied`."""
    endpoint = pipeline.seaweed.endpoint
    with FaultProxy(endpoint) as proxy:
        pipeline.set("s3", "endpoint_url", proxy.url)
        rule = proxy.add(Rule("PUT", LOG_ENTRY, "hold"))
        writer = kill_worker.start(pipeline, workdir, *args)
        held = Held(proxy)
        try:
            assert rule.reached.wait(60), f"{args[0]} never committed"
            if not proxied:
                pipeline.set("s3", "endpoint_url", endpoint)
            yield held
            rule.release.set()
            _, held.err = writer.communicate(timeout=60)
        finally:
            pipeline.set("s3", "endpoint_url", endpoint)
            if writer.poll() is None:
                writer.kill()
    assert writer.returncode == 0, held.err[-3000:]


def race(pipeline, tmp_path, first_day: date, second_day: date) -> list:
    """CuratedTweets of `first_day` is held at its commit while CuratedTweets of `second_day` runs
    to its end; then the first goes on. Both are `luigi` commands. Returns the log PUTs in the order
    the store answered them."""
    with held_at_commit(pipeline, tmp_path / "first", "CuratedTweets", "--date", str(first_day), proxied=True) as first:
        second = kill_worker.run(pipeline, tmp_path / "second", "CuratedTweets", "--date", str(second_day))
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"ran successfully:\n    - 1 CuratedTweets(date={first_day})" in first.err
    return [(put.key.rsplit("/", 1)[1], put.action, put.status) for put in first.proxy.requests("PUT", LOG_ENTRY)]


def test_two_writers_on_one_day_the_loser_finds_the_day_done(pipeline, tmp_path):
    endpoint = pipeline.seaweed.endpoint
    assert build(CuratedTweets(OTHER), RawTweets(DAY)).status == LuigiStatusCode.SUCCESS  # the table is at version 0
    puts = race(pipeline, tmp_path, DAY, DAY)
    # The loser's entry 1 is refused and it commits nothing else: no second version of the day.
    assert puts == [(f"{1:020}.json", "forward", 200), (f"{1:020}.json", "hold", 412)]
    history = table(endpoint, pipeline.run).history()
    assert [(e["version"], e.get("flixluigi.day")) for e in history] == [(1, str(DAY)), (0, str(OTHER))]
    assert len(records(endpoint, pipeline.run, DAY)) == 1
    assert verify(OTHER, DAY) == []


def test_two_writers_on_two_days_both_commit(pipeline, tmp_path):
    endpoint = pipeline.seaweed.endpoint
    assert build(CuratedTweets(OTHER), RawTweets(DAY), RawTweets(NEXT)).status == LuigiStatusCode.SUCCESS
    puts = race(pipeline, tmp_path, DAY, NEXT)
    # The held writer finds version 1 taken by the other day and rebases onto it as version 2.
    assert puts == [(f"{1:020}.json", "forward", 200), (f"{1:020}.json", "hold", 412), (f"{2:020}.json", "forward", 200)]
    history = table(endpoint, pipeline.run).history()
    assert [(e["version"], e.get("flixluigi.day")) for e in history] == [(2, str(DAY)), (1, str(NEXT)), (0, str(OTHER))]
    assert [len(records(endpoint, pipeline.run, day)) for day in (DAY, NEXT)] == [1, 1]
    assert verify(OTHER, NEXT) == []


def test_a_reprocess_that_loses_to_a_restore_rebuilds_from_the_restored_fetch(pipeline, tmp_path):
    """Restore (an operator's command) commits while a Reprocess of the day is held at its commit.
    The Reprocess loses, reads the raw pointer again (restore moved it back) and rebuilds from that
    fetch, so the day verifies clean at once instead of holding a build of a fetch no pointer names."""
    endpoint, run = pipeline.seaweed.endpoint, pipeline.run
    assert build(CuratedTweets(DAY)).status == LuigiStatusCode.SUCCESS
    restored = current_fetch(endpoint, run, DAY)
    assert build(Reprocess(start=DAY, refetch=True, since=since_now())).status == LuigiStatusCode.SUCCESS
    with held_at_commit(pipeline, tmp_path / "reprocess", "Reprocess", "--start", str(DAY)):
        assert actions.restore(DAY, 0).startswith(f"{DAY}: version 0 restored as version 2 ")
    assert current_fetch(endpoint, run, DAY) == restored
    history = table(endpoint, run).history()
    assert [(e["version"], e["flixluigi.raw_fetch"] in restored) for e in history[:2]] == [(3, True), (2, True)]
    assert verify(DAY, DAY) == []


def test_the_store_refuses_the_later_of_two_racing_put_if_absent(pipeline):
    """What every commit relies on: of two `If-None-Match: *` PUTs of one key, the one that reaches
    the store second gets 412 and the object keeps the first one's bytes."""
    key = f"{pipeline.run}/race/entry.json"
    answers: dict[str, int] = {}

    def put(client, name: str) -> None:
        try:
            answers[name] = client.put_object(Bucket=BUCKET, Key=key, Body=name.encode(), IfNoneMatch="*")[
                "ResponseMetadata"]["HTTPStatusCode"]
        except botocore.exceptions.ClientError as exc:
            answers[name] = exc.response["ResponseMetadata"]["HTTPStatusCode"]

    with FaultProxy(pipeline.seaweed.endpoint) as proxy:
        held = proxy.add(Rule("PUT", r"/race/entry\.json$", "hold"))
        early = threading.Thread(target=put, args=(s3(proxy.url), "sent-first"))
        early.start()
        assert held.reached.wait(30)
        put(s3(proxy.url), "arrived-first")
        held.release.set()
        early.join(30)
    assert answers == {"arrived-first": 200, "sent-first": 412}
    assert body(pipeline.seaweed.endpoint, key) == b"arrived-first"


def test_vacuum_while_a_writer_commits_keeps_the_writers_files(pipeline, tmp_path):
    """A writer's data files are in the bucket before its commit names them; vacuum leaves files
    younger than [storage] min_file_age_hours alone (with 0 it deletes these), so the commit that
    follows reads whole."""
    endpoint, run = pipeline.seaweed.endpoint, pipeline.run
    assert build(CuratedTweets(OTHER), RawTweets(DAY)).status == LuigiStatusCode.SUCCESS
    pipeline.set("storage", "keep_versions_days", "0")  # min_file_age_hours keeps its default
    with held_at_commit(pipeline, tmp_path / "writer", "CuratedTweets", "--date", str(DAY)):
        uncommitted = keys(endpoint, f"{run}/curated/tweets/date={DAY}/")
        assert uncommitted and table(endpoint, run).version() == 0
        actions.vacuum(apply=True)
        assert keys(endpoint, f"{run}/curated/tweets/date={DAY}/") == uncommitted
    assert verify(OTHER, DAY) == []
