"""Runs the console starts: `luigi` processes against luigid, kept in a state folder.

luigid cannot start work, so the console starts `luigi --module flixluigi TASK ... --scheduler-url`
as a process of its own session (a restart of the console does not stop it). Each run is a folder:
`run.json` (what was asked, by whom, the process id), `log` (the process's output), `exit` (its
exit code, written by the shell that started it) and `cancelled`. A run's state is read from
those files and the process table only, so a console started again sees every run as it is.

A trigger is refused while luigid runs a task of any of its days (any task family) or another
run of this console covers one; an exclusive lock on the folder makes check and start one step,
so two triggers cannot both pass the check. Every trigger, refusal and cancel goes to `audit.log`.
What the page shows of a run's output is filtered (`visible`): the console holds every secret.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import requests

from flixluigi import config
from flixluigi.dates import day_range
from flixluigi.errors import ConsoleError, RunRefused, SchedulerUnreachable, TooManyTriggers, first_line
from flixluigi.ops.plan import TASKS

RUN_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")
LOG_TAIL = 200  # lines of a run's output the page shows
# The shell that starts a run writes its exit code when it ends, whether or not the console still runs.
# Its first argument is the run's folder (so the process table tells the run's shell from a reused pid).
_WRAPPER = 'dir=$1; shift; "$@" >"$dir/log" 2>&1; echo $? >"$dir/exit.tmp" && mv "$dir/exit.tmp" "$dir/exit"'
_SUMMARY = "===== Luigi Execution Summary ====="
_STATUS_RE = re.compile(r"Informed scheduler that task\s+(\S+)\s+has status\s+(\w+)")


def secret_values() -> list[str]:
    """The values of every secret the console's environment holds (the variables the settings name)."""
    names = {config.xapi().token_env, config.pseudonym().key_env, config.console().token_env,
             config.notify().slack_webhook_env, config.notify().webhook_env,
             "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN"}
    return sorted({os.environ[n] for n in names if len(os.environ.get(n, "")) >= 4}, key=len, reverse=True)


def visible(text: str, hidden: list[str]) -> str:
    """A run's output as the page may show it: secret values, usernames (luigi's worker line names
    the account), @handles and long numeric ids (raw user and post ids) replaced."""
    for value in hidden:
        text = text.replace(value, "[secret]")
    text = re.sub(r"(username|user|host)=[^,\s)]+", r"\1=[hidden]", text)
    text = re.sub(r"(?<![\w@])@\w{1,15}", "@[user]", text)
    return re.sub(r"\b\d{8,}\b", "[id]", text)


def summarize(log: str) -> str:
    """The run's summary: Luigi's execution summary and the `flixluigi:` lines after it (the run
    summary the day tasks recorded, a resume command, the failure lines)."""
    if _SUMMARY not in log:
        return ""
    body = log.split(_SUMMARY)[1].strip()
    after = [line for line in log.rsplit(_SUMMARY, 1)[-1].splitlines() if line.startswith("flixluigi: ")]
    return "\n".join([body, *after]).strip()


def outcome(log: str) -> dict | None:
    """The run summary's JSON line (`flixluigi.runs`): days per outcome, posts read, cost, rows."""
    for line in reversed(log.splitlines()):
        if line.startswith('{"flixluigi_run"'):
            with contextlib.suppress(ValueError):
                return json.loads(line)
    return None


def progress(log: str) -> dict:
    """Tasks the run scheduled and those done, from Luigi's own log lines."""
    status: dict[str, str] = {}
    for task, state in _STATUS_RE.findall(log):
        status[task] = state
    return {"tasks": len(status), "done": sum(s == "DONE" for s in status.values())}


def days_of(params: dict) -> list[date]:
    """The days a luigid task is about: its `date`, or its `start`..`end` (`stop`); [] for others."""
    try:
        if params.get("date"):
            return [date.fromisoformat(params["date"])]
        if params.get("start"):
            end = params.get("end") or params.get("stop")
            return day_range(date.fromisoformat(params["start"]),
                             date.fromisoformat(end) if end and end != "None" else None)
    except ValueError:
        return []
    return []


def scheduler_url() -> str:
    cfg = config.console()
    if cfg.scheduler_url:
        return cfg.scheduler_url.rstrip("/")
    import luigi.interface

    core = luigi.interface.core()
    return core.scheduler_url.rstrip("/") if core.scheduler_url else f"http://{core.scheduler_host}:{core.scheduler_port}"


def running_in_luigid(url: str) -> dict[date, str]:
    """Day -> a task luigid runs now that is about it."""
    try:
        answer = requests.get(f"{url}/api/task_list", params={"data": json.dumps({"status": "RUNNING"})}, timeout=10)
        answer.raise_for_status()
        tasks = answer.json()["response"]
    except (requests.RequestException, ValueError, KeyError) as exc:
        raise SchedulerUnreachable(f"luigid at {url} does not answer ({first_line(exc)}); start it or fix "
                                   "[console] scheduler_url") from None
    found: dict[date, str] = {}
    for task_id, task in tasks.items():
        for day in days_of(task.get("params", {})):
            found.setdefault(day, task_id)
    return found


class Runs:
    """The runs of one state folder."""

    def __init__(self, folder: Path, scheduler: str, config_path: str | None = None):
        self.folder, self.scheduler, self.config_path = folder, scheduler, config_path
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._children: dict[str, subprocess.Popen] = {}
        self.hidden = secret_values()

    def _dir(self, run_id: str) -> Path:
        if not RUN_ID_RE.match(run_id):
            raise LookupError(f"no run {run_id!r}")
        path = self.folder / run_id
        if not (path / "run.json").exists():
            raise LookupError(f"no run {run_id!r}")
        return path

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.folder / "trigger.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def audit(self, requester: str, action: str, **details: object) -> None:
        """One JSON line per trigger, refusal, cancel and login: when, who, what."""
        entry = {"time": datetime.now(UTC).isoformat(), "requester": requester, "action": action, **details}
        fd = os.open(self.folder / "audit.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")

    def recent(self, action: str, seconds: float = 60) -> int:
        """Audit entries of `action` in the last `seconds`, from the log's tail (whichever console wrote them)."""
        path = self.folder / "audit.log"
        if not path.exists():
            return 0
        size = path.stat().st_size
        with open(path, "rb") as log:
            log.seek(max(0, size - 65536))
            lines = log.read().decode("utf-8", "replace").splitlines()[1 if size > 65536 else 0:]
        since = (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()
        entries = (json.loads(line) for line in lines if f'"action": "{action}"' in line)
        return sum(1 for entry in entries if entry["time"] >= since)

    def command(self, task: str, start: date, end: date, refetch: bool, since: datetime) -> list[str]:
        luigi = str(Path(sys.executable).parent / "luigi")
        args = [luigi if os.path.exists(luigi) else shutil.which("luigi") or "luigi", "--module", "flixluigi", task,
                "--start", start.isoformat(), "--end", end.isoformat()]
        if task == "Reprocess":
            args += ["--since", since.strftime("%Y-%m-%dT%H%M%S.%f")] + (["--refetch"] if refetch else [])
        elif task == "Compliance":
            args += ["--since", since.strftime("%Y-%m-%dT%H%M%S")]
        return [*args, "--workers", str(config.console().workers), "--scheduler-url", self.scheduler]

    def task_id(self, task: str, start: date, end: date, refetch: bool, since: datetime) -> str:
        """The run's top task as luigid names it, for the link to its page."""
        from flixluigi import tasks

        params: dict = {"start": start, "end": end}
        if task == "Reprocess":
            params |= {"since": since.replace(tzinfo=None), "refetch": refetch}
        elif task == "Compliance":
            params["since"] = since.replace(tzinfo=None, microsecond=0)
        return getattr(tasks, task)(**params).task_id

    def trigger(self, task: str, start: date, end: date, refetch: bool, requester: str) -> str:
        """Start a run, or refuse it with the reason (audited either way). Returns the run id."""
        if task not in TASKS:
            raise ConsoleError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
        days = day_range(start, end)
        asked = {"task": task, "start": start.isoformat(), "end": end.isoformat(), "refetch": refetch}
        with self._locked():
            try:
                self._refuse_if_busy(days)
            except (ConsoleError, SchedulerUnreachable) as exc:
                self.audit(requester, "refused", **asked, reason=first_line(exc))
                raise
            since = datetime.now(UTC)
            run_id = f"{since:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
            path = self.folder / run_id
            path.mkdir(mode=0o700)
            command = self.command(task, start, end, refetch, since)
            record = {"id": run_id, **asked, "requester": requester, "created": since.isoformat(),
                      "command": command, "task_id": self.task_id(task, start, end, refetch, since)}
            (path / "run.json").write_text(json.dumps(record))
            env = dict(os.environ)
            if self.config_path:
                env["LUIGI_CONFIG_PATH"] = self.config_path
            self.audit(requester, "trigger", id=run_id, **asked)
            try:
                child = subprocess.Popen(["/bin/sh", "-c", _WRAPPER, "sh", str(path), *command], env=env,
                                         start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            except OSError as exc:  # the run is recorded as failed, with the reason as its log
                (path / "log").write_text(f"flixluigi: the run could not start: {first_line(exc)}\n")
                (path / "exit").write_text("127")
                return run_id
            self._children[run_id] = child
            (path / "pid").write_text(str(child.pid))
        return run_id

    def _refuse_if_busy(self, days: list[date]) -> None:
        limit = config.console().triggers_per_minute
        if self.recent("trigger") >= limit:
            raise TooManyTriggers(f"{limit} runs were started in the last minute ([console] triggers_per_minute); "
                               "try again in a minute")
        busy = running_in_luigid(self.scheduler)
        for day in days:
            if day in busy:
                raise RunRefused(f"{day} is running in luigid ({busy[day]}); wait for it to end")
        for run in self.list():
            if run["state"] in ("queued", "running") and set(days) & set(day_range(date.fromisoformat(run["start"]),
                                                                                  date.fromisoformat(run["end"]))):
                raise RunRefused(f"run {run['id']} ({run['task']} {run['start']}..{run['end']}) covers some of "
                                   "these days and has not ended; wait for it or cancel it")

    def _alive(self, path: Path) -> bool:
        """The run's shell still runs (a reused pid is told apart by its command line)."""
        child = self._children.get(path.name)
        if child is not None and child.poll() is not None:
            return False
        try:
            pid = int((path / "pid").read_text())
            return str(path).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return False

    def state(self, path: Path) -> tuple[str, int | None]:
        child = self._children.get(path.name)
        if child is not None:
            child.poll()  # reaps an ended shell of this console (else it lingers as a zombie)
        if (path / "cancelled").exists():
            return "cancelled", None
        if (path / "exit").exists():
            code = int((path / "exit").read_text().strip() or -1)
            return ("success" if code == 0 else "failed"), code
        if not (path / "pid").exists():
            return "queued", None
        return ("running", None) if self._alive(path) else ("failed", None)

    def get(self, run_id: str, log: bool = True) -> dict:
        """The run as the API shows it: what was asked, state, progress, summary, filtered log tail."""
        path = self._dir(run_id)
        record = json.loads((path / "run.json").read_text())
        state, code = self.state(path)
        output = (path / "log").read_text(encoding="utf-8", errors="replace") if (path / "log").exists() else ""
        shown = {key: record[key] for key in ("id", "task", "start", "end", "refetch", "requester", "created", "task_id")}
        shown |= {"state": state, "exit_code": code, "progress": progress(output),
                  "summary": visible(summarize(output), self.hidden), "outcome": outcome(visible(output, self.hidden)),
                  "luigid": f"{self.scheduler}/static/visualiser/index.html#tab=graph&taskId={record['task_id']}"}
        if state == "failed" and code is None and not (path / "cancelled").exists():
            shown["summary"] = shown["summary"] or "the run ended without an exit code (killed?)"
        if log:
            shown["log"] = visible("\n".join(output.splitlines()[-LOG_TAIL:]), self.hidden)
        return shown

    def _paths(self) -> list[Path]:
        """Every run's folder, newest first."""
        return sorted((p for p in self.folder.iterdir() if RUN_ID_RE.match(p.name) and (p / "run.json").exists()),
                      reverse=True)

    def list(self, limit: int = 50) -> list[dict]:
        """The newest runs, newest first (no log)."""
        return [self.get(path.name, log=False) for path in self._paths()[:limit]]

    def cancel(self, run_id: str, requester: str) -> dict:
        """Stop a run's processes (its whole session); it keeps its log, its state is `cancelled`."""
        path = self._dir(run_id)
        if self.state(path)[0] not in ("queued", "running"):
            raise ConsoleError(f"run {run_id} has already ended")
        (path / "cancelled").touch()
        with contextlib.suppress(OSError, ValueError):  # ended meanwhile
            os.killpg(int((path / "pid").read_text()), signal.SIGTERM)
        self.audit(requester, "cancel", id=run_id)
        return self.get(run_id, log=False)
