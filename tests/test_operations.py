"""Operating days that exist: Reprocess (from stored raw, with refetch, dry run), history, restore,
vacuum, status. A day gets three versions: built, rebuilt under a rotated key, refetched."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from luigi.execution_summary import LuigiStatusCode

from flixluigi import CuratedTweets, Reprocess, cli, work
from flixluigi.ops.status import verify
from tests.conftest import BUCKET
from tests.helpers import build, curated, current_fetch, failure_key, fetches, keys, table
from tests.test_faults import ROTATED, since_now

DAY, NEXT = date(2022, 9, 12), date(2022, 9, 13)
FETCH_ID = re.compile(r"fetch=([0-9TZ]+-[0-9a-f]+)\.jsonl")


@dataclass
class Versions:
    """What each version of the day was built from."""

    fetches: list[str]  # raw fetch id of versions 0, 1, 2
    key_ids: list[str]
    rows: int


def fetch_id(key: str) -> str:
    return FETCH_ID.search(key).group(1)


def stored_key(pipeline, line: str) -> str:
    """The key a vacuum line names: raw fetches as s3:// URLs, table files relative to the table."""
    name = line.split(" ", 2)[-1]
    return name.removeprefix(f"s3://{BUCKET}/") if name.startswith("s3://") else f"{pipeline.run}/curated/tweets/{name}"


def run_cli(capsys, *args: str) -> tuple[int, list[str], list[str]]:
    capsys.readouterr()
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


@pytest.fixture
def three_versions(pipeline, monkeypatch) -> Versions:
    """Version 0 built; version 1 rebuilt from the stored raw day under a rotated key, with no API
    call; version 2 rebuilt from a refetch."""
    endpoint = pipeline.seaweed.endpoint
    assert build(CuratedTweets(DAY)).status == LuigiStatusCode.SUCCESS
    first = fetch_id(current_fetch(endpoint, pipeline.run, DAY))
    served = pipeline.api_server.requests_served
    monkeypatch.setenv("FLIXLUIGI_HMAC_KEY", ROTATED)
    assert build(Reprocess(start=DAY, since=since_now())).status == LuigiStatusCode.SUCCESS
    assert pipeline.api_server.requests_served == served, "a rebuild from stored raw calls no API"
    assert build(Reprocess(start=DAY, refetch=True, since=since_now())).status == LuigiStatusCode.SUCCESS
    assert pipeline.api_server.requests_served > served
    second = fetch_id(current_fetch(endpoint, pipeline.run, DAY))
    assert second != first and len(fetches(endpoint, pipeline.run, DAY)) == 2
    key_ids = [curated(endpoint, pipeline.run, DAY, version).column("pseudonym_key_id")[0].as_py() for version in range(3)]
    assert key_ids[0] != key_ids[1] == key_ids[2]
    return Versions([first, first, second], key_ids, curated(endpoint, pipeline.run, DAY).num_rows)


def test_history_lists_every_version_of_the_day(three_versions, capsys):
    code, out, _ = run_cli(capsys, "history", "--date", str(DAY))
    assert code == 0 and len(out) == 3, out
    for line, version, reason in zip(out, (2, 1, 0), ("reprocess", "reprocess", "fetch"), strict=True):
        assert re.fullmatch(rf"version {version}  \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ  {reason}  raw fetch {three_versions.fetches[version]}  "
                            rf"key {three_versions.key_ids[version]}  schema \d+  rows {three_versions.rows}", line), line
    assert verify(DAY, DAY) == []


def test_restore_makes_an_old_version_current_and_the_next_run_keeps_it(pipeline, three_versions, capsys):
    endpoint = pipeline.seaweed.endpoint
    code, out, _ = run_cli(capsys, "restore", "--date", str(DAY), "--version", "1")
    assert (code, out) == (0, [f"{DAY}: version 1 restored as version 3 ({three_versions.rows} rows, "
                               f"raw fetch {three_versions.fetches[1]})"])
    assert curated(endpoint, pipeline.run, DAY).equals(curated(endpoint, pipeline.run, DAY, version=1))
    assert fetch_id(current_fetch(endpoint, pipeline.run, DAY)) == three_versions.fetches[1]
    assert " restore of version 1  raw fetch " in run_cli(capsys, "history", "--date", str(DAY))[1][0]
    assert verify(DAY, DAY) == []
    served = pipeline.api_server.requests_served
    result = build(CuratedTweets(DAY))
    assert result.status == LuigiStatusCode.SUCCESS and "Did not run any tasks" in result.summary_text
    assert pipeline.api_server.requests_served == served and table(endpoint, pipeline.run).version() == 3


def test_vacuum_dry_run_changes_nothing_and_apply_keeps_the_current_day_whole(pipeline, three_versions, capsys):
    endpoint = pipeline.seaweed.endpoint
    assert run_cli(capsys, "restore", "--date", str(DAY), "--version", "1")[0] == 0  # version 3; fetch 2 superseded
    pipeline.set("storage", "keep_versions_days", "0")
    pipeline.set("storage", "min_file_age_hours", "0")
    stored, current = keys(endpoint, f"{pipeline.run}/"), curated(endpoint, pipeline.run, DAY)
    live = {uri.rsplit("/", 1)[1] for uri in table(endpoint, pipeline.run).file_uris()}

    code, planned, _ = run_cli(capsys, "vacuum")
    assert keys(endpoint, f"{pipeline.run}/") == stored, "a dry run deletes nothing"
    superseded = f"would delete s3://{BUCKET}/{pipeline.run}/raw/tweets/date={DAY}/fetch={three_versions.fetches[2]}.jsonl."
    assert code == 0 and planned[0].startswith(superseded) and len(planned) > 1, planned
    assert all(line.startswith("would delete ") and line.rsplit("/", 1)[1] not in live for line in planned)

    code, done, _ = run_cli(capsys, "vacuum", "--apply")
    assert code == 0 and done == [line.replace("would delete", "deleted", 1) for line in planned]
    remaining = keys(endpoint, f"{pipeline.run}/")
    assert set(stored) - set(remaining) == {stored_key(pipeline, line) for line in done}
    assert fetches(endpoint, pipeline.run, DAY) == [current_fetch(endpoint, pipeline.run, DAY)]
    assert curated(endpoint, pipeline.run, DAY).equals(current)
    assert verify(DAY, DAY) == []

    code, out, err = run_cli(capsys, "restore", "--date", str(DAY), "--version", "2")
    assert (code, out, len(err)) == (1, [], 1) and err[0].startswith(
        f"flixluigi: raw fetch {three_versions.fetches[2]} of version 2 was vacuumed; {DAY} cannot be restored to it"), err
    # version 1's files are vacuumed, but version 3 holds its build: nothing to restore, no commit
    assert run_cli(capsys, "restore", "--date", str(DAY), "--version", "1")[1] == [
        f"{DAY}: version 1 is what the day holds now (version 3); nothing to restore, no commit made"]
    assert keys(endpoint, f"{pipeline.run}/") == remaining


def test_dry_run_prints_the_plan_and_changes_nothing(pipeline, capsys):
    endpoint = pipeline.seaweed.endpoint
    assert build(CuratedTweets(DAY)).status == LuigiStatusCode.SUCCESS
    before, served, current = keys(endpoint, f"{pipeline.run}/"), pipeline.api_server.requests_served, current_fetch(endpoint, pipeline.run, DAY)
    for refetch, plans in ((False, [f"rebuild from raw fetch {fetch_id(current)}", "NO RAW DAY: would fail (use --refetch)"]),
                           (True, ["re-fetch from the API, then rebuild"] * 2)):
        capsys.readouterr()
        assert build(Reprocess(start=DAY, end=NEXT, refetch=refetch, dry_run=True)).status == LuigiStatusCode.SUCCESS
        printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("dry run: ")]
        assert printed == [f"dry run: {DAY}: {plans[0]}", f"dry run: {NEXT}: {plans[1]}"]
    assert keys(endpoint, f"{pipeline.run}/") == before
    assert pipeline.api_server.requests_served == served


def test_reprocess_without_a_raw_day_fails_with_the_fix(pipeline, failures):
    assert build(Reprocess(start=DAY, since=since_now())).status == LuigiStatusCode.FAILED
    assert str(failures[-1][1]) == f"{DAY}: no raw fetch of the day is stored; run RawTweets --date {DAY} " \
                                   f"(or Reprocess --start {DAY} --refetch)"
    assert keys(pipeline.seaweed.endpoint, f"{pipeline.run}/") == [failure_key(pipeline.run, "Rebuild", DAY)]


def test_status_shows_done_stale_failed_and_missing_days(pipeline, monkeypatch, capsys):
    assert build(CuratedTweets(DAY)).status == LuigiStatusCode.SUCCESS
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(work, "check_batch", _fail)
        assert build(CuratedTweets(NEXT)).status == LuigiStatusCode.FAILED
    after = NEXT + timedelta(days=1)
    code, lines, _ = run_cli(capsys, "status", "--start", str(DAY), "--end", str(after))
    assert code == 0 and len(lines) == 3
    assert re.match(rf"{DAY}  raw: ok \d+ tweets +curated: ok \d+ rows +read \d+ posts ~\$[\d.]+  built \S+Z in [\d.]+s \(fetch\)$",
                    lines[0]), lines[0]
    assert re.match(rf"{NEXT}  raw: ok \d+ tweets +curated: missing +read \d+ posts ~\$[\d.]+  FAILED at \S+Z: disk on fire$",
                    lines[1]), lines[1]
    assert lines[2] == f"{after}  raw: missing           curated: missing         "
    monkeypatch.setenv("FLIXLUIGI_HMAC_KEY", ROTATED)
    assert " curated: stale " in run_cli(capsys, "status", "--start", str(DAY))[1][0]
    code, _, err = run_cli(capsys, "status", "--start", str(NEXT), "--end", str(DAY))
    assert code == 1 and err == [f"flixluigi: --end {DAY} is before --start {NEXT}; give the range oldest day first"]


def _fail(*args: object, **kwargs: object) -> None:
    raise OSError("disk on fire")
