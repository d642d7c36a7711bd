"""`luigi` as a process of its own, and SIGKILLed at a named point.

As a script, `python tests/kill_worker.py POINT Task --date D --workers 2` runs `luigi --module
flixluigi ...` in this process with a kill point installed. The points
wrap the real code (nothing is mocked away), so the process dies exactly where a crash would hit
it. With `--workers 2` every task runs in a forked child: the child dies, the `luigi` process
lives on and reports the task failed, as on a machine whose worker was OOM-killed.

    fetch             on the third API page of a raw day, its upload half written
    pointer           after the raw fetch object is stored, before the pointer that makes it current
    curation@DAY      as the curated rows of DAY are produced (after DAY's refetch, with --refetch)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

import luigi.cmdline

from flixluigi import work
from flixluigi.xapi.client import XClient

HERE = Path(__file__).resolve()
LUIGI = str(Path(sys.executable).parent / "luigi")


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def wrap(owner: object, name: str, when: Callable[..., bool]) -> None:
    original = getattr(owner, name)

    def wrapper(*args: object, **kwargs: object) -> object:
        if when(*args, **kwargs):
            die()
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def install(point: str) -> None:
    name, _, day = point.partition("@")
    if name == "fetch":
        pages = iter(range(10_000))
        wrap(XClient, "_page", lambda self, path, params: "/search/" in path and next(pages) == 2)
    elif name == "pointer":
        wrap(work, "point", lambda store, day, fetch_id, pointer: True)
    elif name == "curation" and day:
        wrap(work, "check_batch", lambda batch, stats: batch.num_rows and batch.column("date")[0].as_py() == date.fromisoformat(day))
    else:
        raise SystemExit(f"unknown kill point {point!r}; see {__file__}")


def main() -> None:
    install(sys.argv[1])
    luigi.cmdline.luigi_run(["--module", "flixluigi", *sys.argv[2:], "--local-scheduler"])


def command(pipeline: object, workdir: Path, args: tuple[str, ...], point: str | None = None,
            env: dict[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of a `luigi` run with the test's settings (`pipeline.write_cfg`),
    in `workdir`, whose `tmp` folder is the run's TMPDIR (so what it leaves there can be inspected)."""
    tmp = workdir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = pipeline.write_cfg(workdir / "luigi.cfg")
    argv = [sys.executable, str(HERE), point, *args] if point else [LUIGI, "--module", "flixluigi", *args, "--local-scheduler"]
    return argv, {**os.environ, "LUIGI_CONFIG_PATH": str(cfg), "TMPDIR": str(tmp), **(env or {})}


def run(pipeline: object, workdir: Path, *args: str, point: str | None = None, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `luigi` (with a kill point, if given) to its end."""
    argv, environ = command(pipeline, workdir, args, point, env)
    return subprocess.run(argv, env=environ, cwd=workdir, capture_output=True, text=True, timeout=timeout)


def start(pipeline: object, workdir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `luigi` and return at once; `communicate()` collects its output."""
    argv, environ = command(pipeline, workdir, args, None, env)
    return subprocess.Popen(argv, env=environ, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def children(pid: int) -> list[int]:
    """The live processes `pid` forked (with --workers 2: its running tasks), not those ended and unreaped."""
    found = []
    for child in map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split()):
        try:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue
        if state != "Z":
            found.append(child)
    return found


if __name__ == "__main__":
    main()
