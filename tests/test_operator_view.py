"""What an operator reads is as true as the data (issue 22): status, history, verify, vacuum and
restore say what is stored and why, and say nothing false."""

from __future__ import annotations

from datetime import date

from luigi.execution_summary import LuigiStatusCode

from flixluigi import CuratedTweets, Reprocess, cli
from flixluigi.ops.status import status
from flixluigi.store.layout import RawDay, current_failure
from tests.helpers import build, failure_key, keys
from tests.test_faults import since_now
from tests.test_operations import run_cli

DAY, NEXT = date(2022, 9, 12), date(2022, 9, 13)


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
