"""Operating days that exist: Reprocess (archive, rollback, dry run), status, bad ranges."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import luigi
import pytest

from flixluigi import CuratedTweets, Reprocess, cli
from tests.conftest import BUCKET
from tests.helpers import keys, manifest_key, parquet, s3

DAY = date(2022, 9, 12)
NEXT = DAY + timedelta(days=1)
NEW_KEY = "rotated-hmac-key-fedcba9876543210fedcba98"


def build(*tasks):
    return luigi.build(list(tasks), local_scheduler=True, detailed_summary=True, workers=1)


def body(endpoint: str, key: str) -> bytes:
    return s3(endpoint).get_object(Bucket=BUCKET, Key=key)["Body"].read()


def curated(p, day=DAY, name="tweets.parquet"):
    return f"{p.run}/curated/tweets/date={day}/{name}"


def raw(p, day=DAY, name="pages.jsonl.gz"):
    return f"{p.run}/raw/tweets/date={day}/{name}"


def test_reprocess_a_day_from_stored_raw_under_a_rotated_key(pipeline, monkeypatch):
    endpoint = pipeline.seaweed.endpoint
    assert build(CuratedTweets(DAY)).scheduling_succeeded
    old = body(endpoint, curated(pipeline))
    old_key_id = parquet(endpoint, curated(pipeline)).column("pseudonym_key_id")[0].as_py()
    served = pipeline.api_server.requests_served

    monkeypatch.setenv("FLIXLUIGI_HMAC_KEY", NEW_KEY)
    assert build(Reprocess(start=DAY)).scheduling_succeeded
    assert pipeline.api_server.requests_served == served, "rebuilding from raw must not call the API"
    table = parquet(endpoint, curated(pipeline))
    assert table.column("pseudonym_key_id")[0].as_py() != old_key_id
    archived = [k for k in keys(endpoint, f"{pipeline.run}/archive/") if k.endswith("tweets.parquet")]
    assert len(archived) == 1 and archived[0].endswith(curated(pipeline))
    assert body(endpoint, archived[0]) == old
    manifest = json.loads(body(endpoint, manifest_key(pipeline.run, "curated", DAY)))
    assert manifest["pseudonym_key_id"] == table.column("pseudonym_key_id")[0].as_py()


def test_reprocess_a_range_with_refetch_archives_raw_and_curated(pipeline):
    endpoint = pipeline.seaweed.endpoint
    assert build(CuratedTweets(DAY), CuratedTweets(NEXT)).scheduling_succeeded
    served = pipeline.api_server.requests_served
    assert build(Reprocess(start=DAY, end=NEXT, refetch=True)).scheduling_succeeded
    assert pipeline.api_server.requests_served > served
    archived = keys(endpoint, f"{pipeline.run}/archive/")
    for day in (DAY, NEXT):
        for key in (raw(pipeline, day), curated(pipeline, day), manifest_key(pipeline.run, "raw", day),
                    manifest_key(pipeline.run, "curated", day)):
            assert any(a.endswith(key) for a in archived), key


def test_failed_reprocess_puts_the_old_day_back(pipeline, failures):
    endpoint = pipeline.seaweed.endpoint
    assert build(CuratedTweets(DAY)).scheduling_succeeded
    old_parquet = body(endpoint, curated(pipeline))
    old_manifest = body(endpoint, manifest_key(pipeline.run, "curated", DAY))
    # A raw day that now holds another day's tweet: the quality gate refuses to publish it.
    bad = {"data": [{"id": "1", "text": "x", "created_at": "2022-09-13T00:00:01.000Z"}], "meta": {"result_count": 1}}
    s3(endpoint).put_object(Bucket=BUCKET, Key=raw(pipeline), Body=gzip.compress(json.dumps(bad).encode() + b"\n"))

    assert not build(Reprocess(start=DAY)).scheduling_succeeded
    assert "outside 2022-09-12" in str(failures[-1][1])
    assert body(endpoint, curated(pipeline)) == old_parquet
    assert body(endpoint, manifest_key(pipeline.run, "curated", DAY)) == old_manifest


def test_reprocess_without_raw_day_fails_with_the_fix(pipeline, failures):
    assert not build(Reprocess(start=DAY)).scheduling_succeeded
    assert "no raw day stored to rebuild from; reprocess with --refetch" in str(failures[-1][1])
    assert keys(pipeline.seaweed.endpoint, f"{pipeline.run}/") == []


def test_dry_run_lists_and_changes_nothing(pipeline, capsys):
    endpoint = pipeline.seaweed.endpoint
    assert build(CuratedTweets(DAY)).scheduling_succeeded
    before = keys(endpoint, f"{pipeline.run}/")
    capsys.readouterr()
    assert build(Reprocess(start=DAY, end=NEXT, dry_run=True)).scheduling_succeeded
    out = capsys.readouterr().out.splitlines()
    plan = [line for line in out if line.startswith("dry run: ")]
    assert plan[0] == f"dry run: {DAY}: rebuild from stored raw day; archive {curated(pipeline)}, " \
                      f"{manifest_key(pipeline.run, 'curated', DAY)}"
    assert plan[1] == f"dry run: {NEXT}: NO RAW DAY: would fail; archive nothing (no objects yet)"
    assert keys(endpoint, f"{pipeline.run}/") == before


def test_reversed_range_is_one_clear_error():
    with pytest.raises(ValueError, match="--end 2022-09-10 is before --start 2022-09-14; give the range oldest day first"):
        Reprocess.from_str_params({"start": "2022-09-14", "end": "2022-09-10"})


@pytest.mark.parametrize("args, message", [
    (["Reprocess", "--start", "2022-13-45"], "'2022-13-45' is not a date: use YYYY-MM-DD"),
    (["CuratedTweets", "--date", "12.09.2022"], "'12.09.2022' is not a date: use YYYY-MM-DD"),
    (["Reprocess", "--start", "2022-09-14", "--end", "2022-09-10"], "--end 2022-09-10 is before --start 2022-09-14"),
])
def test_bad_dates_on_the_command_line(pipeline, tmp_path: Path, args, message):
    cfg = pipeline.write_cfg(tmp_path / "luigi.cfg")
    done = subprocess.run([str(Path(sys.executable).parent / "luigi"), "--module", "flixluigi", *args, "--local-scheduler"],
                          env={**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
    assert message in done.stderr.strip().splitlines()[-1]


def test_status_shows_done_failed_and_missing_days(pipeline, capsys):
    assert build(CuratedTweets(DAY)).scheduling_succeeded
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("flixluigi.days.write_parquet", _fail)
        assert not build(CuratedTweets(NEXT)).scheduling_succeeded
    capsys.readouterr()
    assert cli.main(["status", "--start", str(DAY), "--end", str(NEXT + timedelta(days=1))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"{DAY}  raw: ok ") and "curated: ok " in lines[0] and " rows" in lines[0]
    assert lines[1].startswith(f"{NEXT}  raw: ok ") and "curated: FAILED at " in lines[1] and "disk on fire" in lines[1]
    assert lines[2] == f"{NEXT + timedelta(days=1)}  raw: missing           curated: missing       "
    assert cli.main(["status", "--start", str(NEXT), "--end", str(DAY)]) == 1
    assert "before --start" in capsys.readouterr().err


def _fail(*args: object, **kwargs: object) -> None:
    raise OSError("disk on fire")
