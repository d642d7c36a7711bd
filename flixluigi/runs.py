"""One `luigi` invocation: its id, the checks it has passed, and the reasons it failed.

The start-up checks are tasks whose identity includes the run id, so luigid never carries a
failed check over to the next run (a disabled task would stay disabled for `disable_persist`),
and their completion is a marker file that every worker process of the run can see (with
`--workers N` each task runs in a forked child). Day tasks that fail append their one-line
reason; the process that started the run prints those reasons last, after Luigi's summary.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

RUN_ID = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{os.getpid()}-{secrets.token_hex(3)}"
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


def _print_failures() -> None:
    """At exit of the process that started the run: the reasons, as the command's last lines."""
    if os.getpid() != _MAIN_PID:
        return
    lines = failures()
    for line in lines:
        print(f"flixluigi: {line}", file=sys.stderr, flush=True)
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


atexit.register(_print_failures)
