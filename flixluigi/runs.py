"""One `luigi` invocation: its id, the checks it has passed, and the reasons it failed.

The start-up checks are tasks whose identity includes the run id, so luigid never carries a
failed check over to the next run (a disabled task would stay disabled for `disable_persist`),
and their completion is a marker file that every worker process of the run can see (with
`--workers N` each task runs in a forked child, and wrapper tasks never run at all). Day tasks
record their outcome there (fetched, curated, rebuilt, complete, failed: posts, cost, rows) and
tasks that fail append their one-line reason; the process that started the run prints, after
Luigi's summary, the run's summary as a text line and a JSON line (`summary`), a Reprocess's
resume command when it did not finish, and the failure reasons last.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from flixluigi import config, summary  # here, not at exit: after a refused import the package cannot be imported again

RUN_ID = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{os.getpid()}-{secrets.token_hex(3)}"
STARTED = time.time()
KEEP_SECONDS = 2 * 86400
_MAIN_PID = os.getpid()


def _base_dir() -> Path:
    """Private to the user (0700): nothing in it is secret, but other users have no business there."""
    path = Path(tempfile.gettempdir()) / f"flixluigi-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _run_dir() -> Path:
    path = _base_dir() / RUN_ID
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def passed(check: str) -> bool:
    return (_base_dir() / RUN_ID / f"{check}.ok").exists()


def mark_passed(check: str) -> None:
    (_run_dir() / f"{check}.ok").touch()


def first_time(name: str) -> bool:
    """True for the first caller in the run, whichever worker process it is (an exclusive create)."""
    try:
        (_run_dir() / f"{name}.once").touch(exist_ok=False)
    except FileExistsError:
        return False
    return True


def record_failure(line: str) -> None:
    """One line per failed task, from whichever process ran it (O_APPEND keeps lines whole)."""
    with open(_run_dir() / "failures", "a", encoding="utf-8") as out:
        out.write(" ".join(line.split()) + "\n")


def failures() -> list[str]:
    path = _base_dir() / RUN_ID / "failures"
    return list(dict.fromkeys(path.read_text(encoding="utf-8").splitlines())) if path.exists() else []


def _append(name: str, entry: dict) -> None:
    """One JSON line, from whichever process (O_APPEND keeps lines whole)."""
    with open(_run_dir() / name, "a", encoding="utf-8") as out:
        out.write(json.dumps(entry, sort_keys=True) + "\n")


def _entries(name: str) -> list[dict]:
    path = _base_dir() / RUN_ID / name
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def record_outcome(outcome: str, task: str, day: str | None = None, **numbers: object) -> None:
    """What a task did (see `flixluigi.summary`), for the run's summary and its progress."""
    _append("outcomes", {"outcome": outcome, "task": task, "day": day, "at": time.time(), **numbers})


def outcomes() -> list[dict]:
    return _entries("outcomes")


def record_planned(task: str, day: str) -> None:
    """A day task the run scheduled to run (recorded where it is scheduled: the progress's total)."""
    _append("planned", {"task": task, "day": day})


def planned(task: str) -> int:
    return len({entry["day"] for entry in _entries("planned") if entry["task"] == task})


def set_resume(command: str) -> None:
    """The command that resumes this run's Reprocess where it stops: printed at exit unless it finished."""
    (_run_dir() / "resume").write_text(command, encoding="utf-8")


def finished_resumable() -> None:
    (_run_dir() / "resume").unlink(missing_ok=True)


def _resume_line() -> str | None:
    path = _base_dir() / RUN_ID / "resume"
    return path.read_text(encoding="utf-8") if path.exists() else None


def _write_summary_file(data: dict) -> None:
    """[summary] json_file, replaced whole (a monitor never reads half a summary)."""
    try:
        target = config.summary().json_file
    except Exception:  # the settings themselves were refused: the printed lines say so
        return
    if target:
        partial = Path(f"{target}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(data) + "\n", encoding="utf-8")
        partial.replace(target)


def _print_summary() -> None:
    """At exit of the process that started the run (also after a failure or Ctrl-C): the summary as
    text and as one JSON line, the resume command of an unfinished Reprocess, then the failure reasons,
    as the command's last lines. Nothing when no task recorded anything (the `flixluigi` command)."""
    if os.getpid() != _MAIN_PID or not (_base_dir() / RUN_ID).exists():
        return
    done, lines, resume = outcomes(), failures(), _resume_line()
    if done or lines:
        data = summary.summarise(RUN_ID, done, lines)
        print(f"flixluigi: {summary.text(data)}", file=sys.stderr)
        print(json.dumps(data, sort_keys=False), file=sys.stderr)
        _write_summary_file(data)
    if resume:
        print(f"flixluigi: Reprocess did not finish; resume it with: {resume}", file=sys.stderr)
    for line in lines:
        print(f"flixluigi: {line}", file=sys.stderr)
    sys.stderr.flush()
    shutil.rmtree(_base_dir() / RUN_ID, ignore_errors=True)


def prune() -> None:
    """Remove what runs that ended long ago (or were killed) left behind."""
    cutoff = time.time() - KEEP_SECONDS
    for entry in _base_dir().iterdir():
        try:
            if entry.is_dir() and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue


atexit.register(_print_summary)
