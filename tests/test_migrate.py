"""`flixluigi migrate` on a bucket written by flixluigi 0.1 itself: its code (commit 5490977 of this
repository) runs as a `luigi` command against the test prefixes, then the bucket is converted.

0.1's layout: `raw/tweets/date=D/pages.jsonl.gz` and `curated/tweets/date=D/tweets.parquet`, each
with a manifest in `<prefix>/_manifests/date=D.json`, and an `archive_prefix` setting.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from luigi.execution_summary import LuigiStatusCode

from flixluigi import CuratedTweets, cli
from flixluigi.ops.status import verify
from tests.conftest import ROOT
from tests.helpers import body, build, curated, keys, parquet_of

OLD = "5490977"  # flixluigi 0.1, the last commit before the Delta layout
DAYS = (date(2022, 9, 12), date(2022, 9, 13))


def old_settings(pipeline, path: Path) -> Path:
    """A luigi.cfg that flixluigi 0.1 understands, for this test's prefixes (0.1 had no package
    defaults, so [retcode] and [RangeDaily] are spelled out)."""
    storage = pipeline.settings["storage"]
    path.write_text("\n".join([
        "[retcode]", "task_failed = 30", "scheduling_error = 35", "unhandled_exception = 40",
        "[RangeDaily]", "days_back = 36500",
        "[s3]", *(f"{k} = {v}" for k, v in pipeline.settings["s3"].items()),
        "[storage]", f"bucket = {storage['bucket']}", f"raw_prefix = {storage['raw_prefix']}",
        f"curated_prefix = {storage['curated_prefix']}", f"archive_prefix = {pipeline.run}/archive",
        "[xapi]", *(f"{k} = {v}" for k, v in pipeline.settings["xapi"].items()),
        "[pseudonym]", "key_env = FLIXLUIGI_HMAC_KEY", ""]))
    return path


def run_old_version(pipeline, tmp_path: Path) -> None:
    code = tmp_path / "flixluigi-0.1"
    code.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", OLD, "flixluigi"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(code)], input=archive.stdout, check=True)
    cfg = old_settings(pipeline, tmp_path / "old.cfg")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "luigi"), "--module", "flixluigi", "RangeDaily", "--of", "CuratedTweets",
         "--start", str(DAYS[0]), "--stop", str(date.fromordinal(DAYS[-1].toordinal() + 1)), "--local-scheduler"],
        env={**os.environ, "PYTHONPATH": str(code), "LUIGI_CONFIG_PATH": str(cfg)}, cwd=tmp_path,
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture
def old_bucket(pipeline, tmp_path) -> dict[date, list[str]]:
    """The test's prefixes as flixluigi 0.1 leaves them; returns each day's tweet ids in its Parquet."""
    run_old_version(pipeline, tmp_path)
    endpoint, run = pipeline.seaweed.endpoint, pipeline.run
    stored = keys(endpoint, f"{run}/")
    for day in DAYS:
        for key in (f"raw/tweets/date={day}/pages.jsonl.gz", f"raw/tweets/_manifests/date={day}.json",
                    f"curated/tweets/date={day}/tweets.parquet", f"curated/tweets/_manifests/date={day}.json"):
            assert f"{run}/{key}" in stored, stored
    return {day: sorted(parquet_of(body(endpoint, f"{run}/curated/tweets/date={day}/tweets.parquet")).column("tweet_id").to_pylist())
            for day in DAYS}


def migrate(capsys, *args: str) -> list[str]:
    capsys.readouterr()
    assert cli.main(["migrate", *args]) == 0
    return capsys.readouterr().out.splitlines()


def test_migrate_a_bucket_written_by_flixluigi_0_1(pipeline, old_bucket, capsys):
    endpoint, run = pipeline.seaweed.endpoint, pipeline.run
    pipeline.set("storage", "min_file_age_hours", "0")  # verify then reports any file left in the table's folder
    before = keys(endpoint, f"{run}/")
    planned = migrate(capsys)
    assert keys(endpoint, f"{run}/") == before, "without --apply nothing changes"
    assert [line.split(":")[0] for line in planned[:2]] == [str(day) for day in DAYS]
    assert planned[2].startswith("remove ") and len(planned) == 3

    applied = migrate(capsys, "--apply")
    assert applied[:2] == planned[:2] and applied[2].startswith("remove ")
    assert verify(DAYS[0], DAYS[-1]) == []
    for day in DAYS:
        assert sorted(curated(endpoint, run, day).column("tweet_id").to_pylist()) == old_bucket[day]
    remaining = keys(endpoint, f"{run}/")
    assert not [k for k in remaining if k.endswith(("/pages.jsonl.gz", "/tweets.parquet")) or "/_manifests/" in k], remaining

    assert migrate(capsys, "--apply") == ["nothing to migrate: no object of the old layout"]
    assert keys(endpoint, f"{run}/") == remaining
    served = pipeline.api_server.requests_served
    result = build(*[CuratedTweets(day) for day in DAYS])
    assert result.status == LuigiStatusCode.SUCCESS and "Did not run any tasks" in result.summary_text
    assert pipeline.api_server.requests_served == served
