"""What an operator reads is as true as the data (issue 22): status, history, verify, vacuum and
restore say what is stored and why, and say nothing false."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from luigi.execution_summary import LuigiStatusCode

from devkit import sandbox
from devkit.sandbox.compliance import ComplianceConfig
from devkit.sandbox.generator import generate_day
from flixluigi import Compliance, CuratedTweets, Reprocess, cli, errors, runs
from flixluigi.dates import compact
from flixluigi.errors import hint_of
from flixluigi.ops.status import status
from flixluigi.store.layout import RawDay, current_failure
from flixluigi.store.s3 import Storage
from flixluigi.summary import summarise, text
from flixluigi.tasks import MonthCounts
from flixluigi.work import Reporter, fetch_day
from flixluigi.xapi.client import day_window
from tests.conftest import TIME_SCALE, TOKEN, api_url, free_port
from tests.helpers import build, failure_key, keys
from tests.test_faults import since_now
from tests.test_operations import run_cli

DAY, NEXT = date(2022, 9, 12), date(2022, 9, 13)
LUIGI = str(Path(sys.executable).parent / "luigi")


def luigi_run(pipeline, tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`luigi --module flixluigi ...` as an operator runs it, with the test's settings as luigi.cfg."""
    cfg = pipeline.write_cfg(tmp_path / "luigi.cfg")
    command = [LUIGI, "--module", "flixluigi", *args]
    return subprocess.run(command, env={**os.environ, "LUIGI_CONFIG_PATH": str(cfg), **(env or {})}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


def flixluigi_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("flixluigi: ")]


def summary_json(stderr: str) -> dict:
    (line,) = [line for line in stderr.splitlines() if line.startswith('{"flixluigi_run"')]
    return json.loads(line)


def test_a_failure_counts_only_while_no_later_pointer_or_record_exists():
    raw = RawDay(pointers=[("20260101T120000000000Z", "f", "k")])
    assert current_failure({"started_at": "2026-01-01T12:00:01+00:00"}, raw, [])
    assert not current_failure({"started_at": "2026-01-01T11:59:59+00:00"}, raw, [])
    # a slow failing attempt that began before a success finished, and wrote its marker after it
    assert not current_failure({"started_at": "2026-01-01T11:00:00+00:00", "failed_at": "2026-01-01T13:00:00+00:00"},
                               RawDay(), [("20260101T120000000000Z", "b", "k")])
    assert current_failure({"failed_at": "2026-01-01T11:00:00+00:00"}, None, [])


def test_a_later_success_of_another_task_outdates_a_failed_reprocess(pipeline, capsys):
    """Finding 1: Reprocess of a day with no raw day fails; CuratedTweets then makes it whole."""
    assert build(Reprocess(start=DAY, since=since_now())).status == LuigiStatusCode.FAILED
    (failed,) = status(DAY, DAY)
    assert failed.failure and "no raw fetch of the day is stored" in failed.failure["error"]
    assert build(CuratedTweets(DAY)).status == LuigiStatusCode.SUCCESS
    assert failure_key(pipeline.run, "Rebuild", DAY) in keys(pipeline.seaweed.endpoint, f"{pipeline.run}/records/failed/")
    code, lines, _ = run_cli(capsys, "status", "--start", str(DAY))
    assert code == 0 and "FAILED" not in lines[0] and " curated: ok " in lines[0], lines
    (whole,) = status(DAY, DAY)
    assert whole.failure is None and whole.curated == "ok"


def test_status_without_the_key_exits_non_zero_naming_it(pipeline, monkeypatch, capsys):
    """Finding 2: without the key every curated day looked stale, and status exited 0."""
    assert build(CuratedTweets(DAY)).status == LuigiStatusCode.SUCCESS
    monkeypatch.delenv("FLIXLUIGI_HMAC_KEY")
    code, out, err = run_cli(capsys, "status", "--start", str(DAY))
    assert code == 1 and out == [] and len(err) == 1
    assert "HMAC key" in err[0] and "$FLIXLUIGI_HMAC_KEY" in err[0], err


def test_every_subcommand_documents_its_exit_codes(capsys):
    for command in ("summary", "status", "verify", "estimate", "history", "restore", "report", "vacuum", "migrate"):
        try:
            cli.main([command, "--help"])
        except SystemExit as done:
            assert done.code == 0
        help_text = " ".join(capsys.readouterr().out.split())
        assert "exit codes: 0 " in help_text and "2 on bad arguments" in help_text, (command, help_text)


def test_a_run_ends_with_one_summary_in_text_and_json_under_two_workers(pipeline, tmp_path):
    """Finding 3: a run said nothing of what it did. Day tasks record outcomes in the run's folder
    (forked children under --workers 2; RangeDaily itself never runs), the parent prints them."""
    assert build(CuratedTweets(DAY)).status == LuigiStatusCode.SUCCESS
    pipeline.settings["summary"] = {"json_file": str(tmp_path / "last-run.json")}  # the luigi.cfg file only
    done = luigi_run(pipeline, tmp_path, "RangeDaily", "--of", "CuratedTweets", "--start", str(DAY), "--stop", "2022-09-15",
                     "--workers", "2", "--local-scheduler")
    assert done.returncode == 0, done.stderr[-3000:]
    data = summary_json(done.stderr)
    assert json.loads((tmp_path / "last-run.json").read_text()) == data  # the same, for monitoring
    assert data["days"]["complete"] == [str(DAY)]
    assert data["days"]["fetched"] == data["days"]["curated"] == ["2022-09-13", "2022-09-14"]
    assert data["days"]["failed"] == [] and data["failures"] == []
    assert data["posts_read"] > 0 and data["cost_usd"] > 0 and 0 < data["rows_published"] <= data["posts_read"]
    (text,) = [line for line in flixluigi_lines(done.stderr) if "run summary:" in line]
    assert f"fetched 2 days (2022-09-13..2022-09-14); curated 2 days (2022-09-13..2022-09-14); already complete 1 day ({DAY})" in text
    assert f"{data['posts_read']} posts read, ~${data['cost_usd']:.2f}, {data['rows_published']} rows published" in text
    assert "CuratedTweets: 2 of 2 days done (0 failed), ETA 0:00:00" in done.stderr


def test_a_failed_reprocess_prints_a_resume_command_that_works(pipeline, tmp_path):
    """Finding 5: the resume value did not parse as --since (exit 40); a failed Reprocess printed none."""
    failed = luigi_run(pipeline, tmp_path, "Reprocess", "--start", str(DAY), "--end", str(NEXT), "--local-scheduler")
    assert failed.returncode == 30, failed.stderr[-3000:]
    lines = flixluigi_lines(failed.stderr)
    (resume,) = [line.split("resume it with: ", 1)[1] for line in lines if "resume it with: " in line]
    assert resume.startswith(f"luigi --module flixluigi Reprocess --start {DAY} --end {NEXT} --since ")
    assert resume.endswith(" --local-scheduler")
    assert lines[-1].startswith("flixluigi: Rebuild ") and summary_json(failed.stderr)["days"]["failed"] == [str(DAY), str(NEXT)]
    for day in (DAY, NEXT):
        assert build(CuratedTweets(day)).status == LuigiStatusCode.SUCCESS
    again = luigi_run(pipeline, tmp_path, *shlex.split(resume)[3:])
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resume it with" not in again.stderr and "Reprocess: 2 day(s) rebuilt since" not in again.stderr


def test_days_are_summarised_as_compact_ranges():
    assert compact([date(2022, 9, 14), date(2022, 9, 12), date(2022, 9, 13), date(2022, 9, 20)]) == \
        "2022-09-12..2022-09-14, 2022-09-20"
    data = summarise("r", [{"outcome": "complete", "day": "2022-09-12"}, {"outcome": "failed", "day": "2022-09-12"},
                           {"outcome": "compliance", "days": ["2022-09-12"], "removed": {"posts removed": 3}}], ["x failed"])
    assert data["days"]["complete"] == [] and data["days"]["failed"] == ["2022-09-12"]
    assert text(data) == "run summary: failed 1 day (2022-09-12); compliance checked 1 day, removed 3 posts removed; " \
                         "0 posts read, ~$0.00, 0 rows published"


@pytest.mark.parametrize("args, code, last", [
    (["CuratedTweets", "--date", "2022-13-45"], 2,
     "flixluigi: bad argument: '2022-13-45' is not a date: use YYYY-MM-DD, e.g. 2022-09-12 (fix: write the day as YYYY-MM-DD"),
    (["Reprocess", "--start", "2022-09-14", "--end", "2022-09-10"], 2,
     "flixluigi: Reprocess failed: --end 2022-09-10 is before --start 2022-09-14; give the range oldest day first "
     "(fix: give the range oldest day first (swap --start and --end))"),
    (["RangeDaily", "--of", "CuratedTweets", "--start", "2022-09-14", "--stop", "2022-09-10"], 35,
     "flixluigi: RangeDaily failed: --stop 2022-09-10 is before --start 2022-09-14 (fix: give --start the first day and "
     "--stop the day after the last (exclusive), e.g. --start 2022-09-10 --stop 2022-09-14)"),
    (["CuratedTweets", "--date", "2999-01-01"], 30,
     "flixluigi: RawTweets 2999-01-01 failed: 2999-01-01 has not ended yet in UTC; a partial day is never stored: run it "
     "after 2999-01-02T00:"),
], ids=["malformed date", "reversed range", "reversed RangeDaily", "future day"])
def test_a_bad_argument_ends_the_run_on_its_reason_and_a_hint_that_works(pipeline, tmp_path, args, code, last):
    """Findings 6 and 8: a traceback or Luigi's banner instead of the reason; "rerun the same command"
    where it fails again."""
    done = luigi_run(pipeline, tmp_path, *args, "--local-scheduler")
    assert done.returncode == code, done.stderr[-3000:]
    final = done.stderr.strip().splitlines()[-1]
    assert final.startswith(last), final
    assert "rerun" not in final
    if code == 2:  # refused before anything ran (a failed task's traceback is Luigi's log, as is RangeDaily.complete()'s)
        assert "Traceback" not in done.stderr


def test_hints_name_the_day_and_never_say_rerun_where_a_rerun_fails_again():
    """Finding 8: a literal DAY in hints and the report; "rerun" after a future date or a reversed range."""
    classes, pending = [], [errors.FlixluigiError]
    while pending:
        classes.append(pending.pop())
        pending += classes[-1].__subclasses__()
    assert all("DAY" not in cls.hint for cls in classes)
    assert hint_of(errors.NoRawDay("x"), DAY) == f"fetch the raw day first: luigi --module flixluigi RawTweets --date {DAY} " \
                                                f"(or Reprocess --start {DAY} --refetch)"
    for error in (errors.InvalidRange("x"), errors.InvalidDate("x"), errors.InvalidRequest("x"),
                  *(caught(lambda d=day, e=endpoint: day_window(d, e)) for day, endpoint in (
                      (date(2999, 1, 1), "all"), (date(2005, 1, 1), "all"), (DAY, "recent")))):
        assert "rerun the same command" not in hint_of(error, DAY), error
    assert "scripts/sandbox.sh start" in errors.ApiUnreachable.hint


def caught(action) -> BaseException:
    try:
        action()
    except Exception as exc:
        return exc
    raise AssertionError("no error")


@pytest.mark.parametrize("text, line", [
    ("[s3]\nendpoint-url = http://127.0.0.1:1\n", "[s3] has 'endpoint-url', which boto3 does not take; did you mean 'endpoint_url'?"),
    ("[xapi]\nendpont = recent\n", "[xapi] has no setting 'endpont'; did you mean 'endpoint'?"),
    ("[days]\nretry_delay = 30s\n", "[days] retry_delay = '30s' must be a number (no unit) (seconds between those tries)"),
], ids=["s3 key", "misspelt key", "unit"])
def test_both_commands_refuse_bad_settings_naming_file_section_key_and_value(pipeline, tmp_path, text, line):
    """Findings 4 and 6: Luigi's parse error without key or value, boto3's TypeError, a misspelt key
    that the flixluigi command ignored (exit 0); all before any S3 or API call."""
    cfg = tmp_path / "bad.cfg"
    cfg.write_text(text)
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}
    done = subprocess.run([LUIGI, "--module", "flixluigi", "CuratedTweets", "--date", str(DAY), "--local-scheduler"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith(f"flixluigi: settings refused: {cfg} {line}")
    assert "Scheduled" not in done.stderr and "cannot tell" not in done.stderr, done.stderr  # nothing scheduled, no S3 asked
    tool = subprocess.run([str(Path(LUIGI).with_name("flixluigi")), "--config", str(cfg), "status", "--start", str(DAY)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert tool.returncode == 1 and tool.stderr.strip() == f"flixluigi: {cfg} {line}", tool.stderr


def test_a_run_without_a_settings_file_is_refused_before_any_request(pipeline, tmp_path):
    """Finding 4: it reached AWS S3 with the environment's keys, then refused after seconds of warnings;
    a LUIGI_CONFIG_PATH naming a missing file was not named."""
    env = {key: value for key, value in os.environ.items() if key != "LUIGI_CONFIG_PATH"}
    for extra, reason in (({}, "no luigi.cfg found: run from the project directory or set LUIGI_CONFIG_PATH"),
                          ({"LUIGI_CONFIG_PATH": str(tmp_path / "gone.cfg")}, f"LUIGI_CONFIG_PATH names {tmp_path / 'gone.cfg'}, "
                                                                               "which does not exist")):
        done = subprocess.run([LUIGI, "--module", "flixluigi", "CuratedTweets", "--date", str(DAY), "--local-scheduler"],
                              env={**env, **extra}, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "Scheduled" not in done.stderr and "cannot tell" not in done.stderr, done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith(f"flixluigi: settings refused: {reason}")


@pytest.mark.faults
def test_s3_refusing_connections_fails_the_start_at_once_without_retries(pipeline, failures, caplog):
    """Finding 7: Preflight failed after 72 s (3 tries of every botocore retry); the API down took 3.5 s."""
    pipeline.set("s3", "endpoint_url", f"http://127.0.0.1:{free_port()}")
    assert build(CuratedTweets(DAY)).status == LuigiStatusCode.FAILED
    (task, error), = failures
    assert task.task_family == "Preflight" and isinstance(error, errors.StorageError) and not error.transient
    assert str(error).endswith("refuses connections; start it (scripts/seaweedfs.sh start) or fix [s3] endpoint_url")
    assert "retrying in" not in caplog.text


def test_verify_vacuum_and_restore_say_what_they_found(pipeline, capsys):
    """Finding 9: verify said nothing of a missing day; a vacuum dry run printed nothing; restoring
    the version that is current made another identical commit."""
    assert build(CuratedTweets(DAY)).status == LuigiStatusCode.SUCCESS
    assert run_cli(capsys, "verify", "--start", str(DAY)) == (0, [f"{DAY}..{DAY}: every day is whole and current"], [])
    code, out, _ = run_cli(capsys, "verify", "--start", str(DAY), "--end", str(NEXT))
    assert code == 1 and out == [f"{NEXT}: missing: no raw fetch and no curated day stored; run luigi --module flixluigi "
                                 f"CuratedTweets --date {NEXT}"]
    code, out, _ = run_cli(capsys, "vacuum")
    assert code == 0 and len(out) == 1 and out[0].startswith("nothing to delete: "), out
    (version,) = [int(line.split()[1]) for line in run_cli(capsys, "history", "--date", str(DAY))[1]]
    log = keys(pipeline.seaweed.endpoint, f"{pipeline.run}/curated/tweets/_delta_log/")
    code, out, _ = run_cli(capsys, "restore", "--date", str(DAY), "--version", str(version))
    assert code == 0 and out == [f"{DAY}: version {version} is what the day holds now (version {version}); nothing to "
                                 "restore, no commit made"]
    assert keys(pipeline.seaweed.endpoint, f"{pipeline.run}/curated/tweets/_delta_log/") == log


def test_compliance_says_what_it_removed_and_status_and_history_say_why(pipeline, capsys, tmp_path):
    """Finding 3: a Compliance run that removed posts printed nothing; status showed fewer curated rows
    than raw posts with no reason, history an unlabelled version."""
    assert build(CuratedTweets(DAY)).status == LuigiStatusCode.SUCCESS
    pipeline.set("compliance", "poll_interval", "0.01")
    deleted = generate_day(DAY, 300, 0).tweets[3]["id"]
    server = sandbox.start(token=TOKEN, volume=300, compliance=ComplianceConfig(tweets={deleted: "deleted"}),
                           time_scale=TIME_SCALE)
    try:
        pipeline.set("xapi", "base_url", api_url(server))
        capsys.readouterr()
        assert build(Compliance(start=DAY, end=NEXT)).status == LuigiStatusCode.SUCCESS
        printed = capsys.readouterr().out.splitlines()
        assert f"compliance: {DAY}: removed 1 posts deleted" in printed
        assert "compliance: 1 stored day(s) checked, 1 changed" in printed
        (entry,) = [e for e in runs.outcomes() if e["outcome"] == "compliance"]
        assert text(summarise("r", [entry], [])).startswith("run summary: compliance checked 1 day, removed 1 posts deleted")
    finally:
        server.shutdown()
    (line,) = run_cli(capsys, "status", "--start", str(DAY))[1]
    assert line.endswith("(compliance)  compliance removed 1 posts deleted"), line
    history = run_cli(capsys, "history", "--date", str(DAY))[1]
    assert [entry.split()[3] for entry in history] == ["compliance", "fetch"], history


def test_a_fetch_reports_its_progress_against_the_expected_posts(pipeline):
    """Finding 3: progress of a long run, down to the pages of one day's fetch (luigid shows it)."""
    assert build(MonthCounts(DAY.replace(day=1))).status == LuigiStatusCode.SUCCESS
    seen: list[tuple[str, int | None]] = []
    pointer = fetch_day(Storage.from_config(), DAY, Reporter(progress=lambda message, percent=None: seen.append((message, percent))))
    percents = [percent for _message, percent in seen if percent is not None]
    assert len(percents) == pointer["pages"] + 1 and percents == sorted(percents) and percents[-1] == 100
    assert all(0 < percent < 100 for percent in percents[:-1])
    assert seen[0][0].endswith(f" of ~{pointer['expected_tweets']} expected")
