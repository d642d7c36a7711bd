"""The README's commands work as written (issue 22): every fenced block is marked, and every block
marked `run` runs, in order, after the demo's day, against the test's SeaweedFS and sandbox.

Marks (an HTML comment on the line before the fence): `run` (run here), `demo` (the demo and test
scripts themselves), `static` (cron, compose, luigid and production lines: they name fixed paths,
ports and hosts; checked by reading them), `text` (not commands).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

from luigi.execution_summary import LuigiStatusCode

from flixluigi import CuratedTweets
from tests.conftest import ROOT
from tests.helpers import build

MARK = re.compile(r"^<!-- readme: (run|static|demo|text) -->$")
DEMO_DAY = "2022-09-12"


def blocks() -> list[tuple[str | None, int, str]]:
    """(mark or None, line number, text) of every fenced block of the README."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    found, inside, start = [], False, 0
    for number, line in enumerate(lines):
        if line.startswith("```"):
            if not inside:
                previous = lines[number - 1] if number else ""
                mark = MARK.match(previous)
                found.append((mark.group(1) if mark else None, number + 1, ""))
                start = number + 1
            else:
                kind, where, _ = found[-1]
                found[-1] = (kind, where, "\n".join(lines[start:number]))
            inside = not inside
    return found


def test_every_readme_block_is_marked():
    unmarked = [where for kind, where, _ in blocks() if kind is None]
    assert unmarked == [], f"README.md blocks at lines {unmarked} need <!-- readme: run|static|demo|text -->"
    assert blocks()[0][0] == "demo" and "scripts/demo.sh" in blocks()[0][2]


def test_static_blocks_name_real_commands():
    """The cron and luigid lines use the package's commands and tasks as they exist."""
    for kind, where, text in blocks():
        if kind == "static":
            for task in re.findall(r"--module flixluigi (\w+)", text):
                assert task in {"CuratedTweets", "LastWeek", "Compliance", "Backfill", "Reprocess", "RangeDaily"}, (where, task)


def test_every_run_block_works_as_written_after_the_demo(pipeline, tmp_path):
    """The demo stored DEMO_DAY; then each `run` block, as printed, from another directory with the
    test's settings in LUIGI_CONFIG_PATH (as scripts/env.sh sets the project's)."""
    assert build(CuratedTweets(date.fromisoformat(DEMO_DAY))).status == LuigiStatusCode.SUCCESS
    pipeline.set("compliance", "poll_interval", "0.01")
    cfg = pipeline.write_cfg(tmp_path / "luigi.cfg")
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(cfg), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    runnable = [(where, text) for kind, where, text in blocks() if kind == "run"]
    assert len(runnable) >= 6
    for where, text in runnable:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", text], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, f"README.md block at line {where}:\n{done.stdout[-1500:]}\n{done.stderr[-3000:]}"
    assert (tmp_path / "report.html").stat().st_size > 0
