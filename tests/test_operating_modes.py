"""The ways data engineers run it: several workers, cron from any directory, long ranges, and
failures that end the run in seconds with one line saying why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from luigi.tools.range import RangeDaily

from flixluigi import Backfill, CuratedTweets, Rebuild
from flixluigi.ops.status import verify
from tests.conftest import free_port
from tests.helpers import body, curated, failure_key, keys

LUIGI = str(Path(sys.executable).parent / "luigi")


def luigi_run(pipeline, tmp_path: Path, *args: str, env: dict | None = None, cfg_extra: dict | None = None,
              with_cfg: bool = True) -> tuple[subprocess.CompletedProcess, float]:
    """`luigi --module flixluigi ...` from a directory without luigi.cfg, settings via LUIGI_CONFIG_PATH."""
    for section, values in (cfg_extra or {}).items():
        pipeline.settings.setdefault(section, {}).update(values)
    cfg = pipeline.write_cfg(tmp_path / "etc" / "flixluigi.cfg")
    workdir = tmp_path / "cron"
    workdir.mkdir(exist_ok=True)
    environment = {**os.environ, **(env or {})}
    environment.pop("LUIGI_CONFIG_PATH", None)
    if with_cfg:
        environment["LUIGI_CONFIG_PATH"] = str(cfg)
    started = time.monotonic()
    done = subprocess.run([LUIGI, "--module", "flixluigi", *args, "--local-scheduler"], env=environment, cwd=workdir,
                          capture_output=True, text=True, timeout=300)
    return done, time.monotonic() - started


def last_line(done: subprocess.CompletedProcess) -> str:
    return done.stderr.strip().splitlines()[-1]


def test_a_range_with_two_workers(pipeline, tmp_path):
    done, _ = luigi_run(pipeline, tmp_path, "RangeDaily", "--of", "CuratedTweets", "--start", "2022-10-01", "--stop",
                        "2022-10-05", "--workers", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert verify(date(2022, 10, 1), date(2022, 10, 4)) == []
    assert set(curated(pipeline.seaweed.endpoint, pipeline.run).column("date").to_pylist()) == {
        date(2022, 10, d) for d in range(1, 5)}


def test_a_forked_worker_never_uses_the_scheduling_process_s3_connections(pipeline):
    """With --workers N each task runs in a fork of the process that checked its completeness."""
    task = Rebuild(date(2022, 10, 1), since=datetime(2022, 10, 2))
    assert not task.complete()  # the scheduler's question, through its pooled connection
    scheduler_client = task.storage.s3
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the worker's fork: report and leave without running any of pytest's teardown
        os.write(writer, b"own" if task.storage.s3 is not scheduler_client else b"inherited")
        os._exit(0)
    os.close(writer)
    os.waitpid(child, 0)
    assert os.read(reader, 16) == b"own"


@pytest.mark.faults
@pytest.mark.parametrize("case, args, env, extra, code, reason", [
    ("no token", ["CuratedTweets", "--date", "2022-09-12"], {"X_BEARER_TOKEN": ""}, None, 30,
     "Preflight failed: no bearer token: export $X_BEARER_TOKEN"),
    ("short key", ["CuratedTweets", "--date", "2022-09-12"], {"FLIXLUIGI_HMAC_KEY": "short"}, None, 30,
     "Preflight failed: HMAC key from $FLIXLUIGI_HMAC_KEY is 5 bytes, needs at least 32"),
    ("future day", ["CuratedTweets", "--date", "2999-01-01"], {}, None, 30,
     "RawTweets 2999-01-01 failed: 2999-01-01 has not ended yet in UTC"),
    ("S3 down", ["CuratedTweets", "--date", "2022-09-12"], {}, {"s3": {"endpoint_url": "http://127.0.0.1:{port}"}}, 30,
     "Preflight failed: S3 endpoint http://127.0.0.1:{port} refuses connections; start it (scripts/seaweedfs.sh start)"),
    ("misspelt key", ["CuratedTweets", "--date", "2022-09-12"], {}, {"xapi": {"endpont": "recent"}}, 2,
     "settings refused: {cfg} [xapi] has no setting 'endpont'; did you mean 'endpoint'?"),
    ("reversed range", ["Reprocess", "--start", "2022-09-14", "--end", "2022-09-10"], {}, None, 2,
     "Reprocess failed: --end 2022-09-10 is before --start 2022-09-14"),
])
def test_a_failure_no_retry_can_mend_ends_the_run_at_once_with_its_reason(pipeline, tmp_path, case, args, env, extra, code,
                                                                          reason):
    port = str(free_port())
    extra = {s: {k: v.format(port=port) for k, v in values.items()} for s, values in (extra or {}).items()}
    pipeline.set("days", "tries", "1")
    done, seconds = luigi_run(pipeline, tmp_path, *args, env=env, cfg_extra=extra)
    assert done.returncode == code, done.stderr[-2000:]
    reason = reason.format(port=port, cfg=tmp_path / "etc" / "flixluigi.cfg")
    assert last_line(done).startswith("flixluigi: " + reason), last_line(done)
    assert seconds < 60, f"{case}: {seconds:.0f}s"
    if case == "future day":
        marker = json.loads(body(pipeline.seaweed.endpoint, failure_key(pipeline.run, "RawTweets", "2999-01-01")))
        assert "has not ended yet" in marker["error"]
    if case != "future day" and case != "reversed range":
        assert keys(pipeline.seaweed.endpoint, f"{pipeline.run}/raw/") == []


def test_without_any_settings_file_the_run_refuses_and_exits_non_zero(pipeline, tmp_path):
    done, _ = luigi_run(pipeline, tmp_path, "CuratedTweets", "--date", "2022-09-12", with_cfg=False)
    assert done.returncode == 2, done.stderr[-2000:]
    assert last_line(done).startswith("flixluigi: settings refused: no luigi.cfg found: run from the project directory or set "
                                      "LUIGI_CONFIG_PATH"), last_line(done)


def test_package_defaults_hold_in_any_directory(tmp_path):
    probe = ("import flixluigi, luigi.configuration as c; from luigi.tools.range import RangeDaily; "
             "r = RangeDaily(of=flixluigi.CuratedTweets, start=__import__('datetime').date(2020, 1, 1)); "
             "print(r.days_back, r.task_limit, c.get_config().get('retcode', 'task_failed'), "
             "c.get_config().get('worker', 'keep_alive'), c.get_config().get('resources', 'x_api'))")
    env = {k: v for k, v in os.environ.items() if k != "LUIGI_CONFIG_PATH"}
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["36500", "1000000", "30", "false", "1"], done.stderr[-1500:]


def test_a_hundred_year_range_requires_only_the_days_the_endpoint_can_serve(pipeline):
    now = datetime(2006, 3, 24, 12, tzinfo=UTC).timestamp()
    task = RangeDaily(of=CuratedTweets, start=date(1926, 1, 1), stop=date(2006, 3, 24), now=int(now))
    wanted = sorted(t.date for t in task.requires())
    assert wanted == [date(2006, 3, 21), date(2006, 3, 22), date(2006, 3, 23)]


def test_backfill_is_inclusive_and_skips_days_the_endpoint_cannot_serve(pipeline, caplog):
    pipeline.set("xapi", "endpoint", "recent")
    today = datetime.now(UTC).date()
    task = Backfill(start=date(2022, 9, 1), end=today - timedelta(days=2))
    wanted = [t.date for t in task.requires()]
    assert wanted and all((today - day).days <= 7 for day in wanted)
    assert wanted[-1] == task.end
    assert "Backfill: skipping" in caplog.text and "outside the recent-search window" in caplog.text
