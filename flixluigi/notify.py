"""Notifications: Luigi event handlers that tell an operator once about every problem.

FAILURE and BROKEN_TASK events and the pipeline's own warnings (WARNING_EVENT: empty day,
counts mismatch, long rate-limit waits) become one message each to a Slack incoming webhook
and/or a generic JSON webhook, whose URLs come from the environment ([notify] section). A
message names the task, the day, the error in one line, the error's hint, and the task's page
in luigid when a central scheduler is used. Secrets are redacted from every message; a notification that
cannot be delivered is logged and never fails the pipeline.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import UTC, datetime

import luigi
import luigi.interface
import requests
from luigi.cmdline_parser import CmdlineParser

from flixluigi import config, runs
from flixluigi.errors import first_line, hint_of

log = logging.getLogger("luigi-interface")
WARNING_EVENT = "flixluigi.warning"
_sent: set[tuple[str, str, str]] = set()
_lock = threading.Lock()


def secrets() -> list[str]:
    """Values that must never leave the process: tokens, keys, webhook URLs."""
    names = {config.xapi().token_env, config.pseudonym().key_env, config.notify().slack_webhook_env,
             config.notify().webhook_env, "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
    return [value for value in (os.environ.get(name, "") for name in names) if len(value) >= 6]


def redact(text: str) -> str:
    for secret in secrets():
        text = text.replace(secret, "[redacted]")
    return text


def _scheduler_link(task: luigi.Task) -> str | None:
    """The task's page in luigid's web view: from [notify] scheduler_url, else from the `luigi`
    command line's scheduler options; None with the local scheduler."""
    base = config.notify().scheduler_url
    if not base:
        if CmdlineParser.get_instance() is None:
            return None
        core = luigi.interface.core()
        if core.local_scheduler:
            return None
        base = core.scheduler_url or f"http://{core.scheduler_host}:{core.scheduler_port}"
    return f"{base.rstrip('/')}/static/visualiser/index.html#tab=graph&taskId={task.task_id}"


def _task_day(task: luigi.Task) -> str | None:
    if getattr(task, "date", None):
        return task.date.isoformat()
    if getattr(task, "start", None):
        return f"{task.start}..{getattr(task, 'end', None) or task.start}"
    return None


def compose(event: str, task: luigi.Task, error: str, hint: str) -> dict:
    """The JSON event; its `text` is the Slack message."""
    line = redact(" ".join(error.split()))
    day = _task_day(task)
    link = _scheduler_link(task)
    text = f"flixluigi {event}: {task.task_family}" + (f" {day}" if day else "") + f": {line}. Hint: {hint}." + \
        (f" <{link}|Open in luigid>" if link else "")
    return {"event": event, "task": str(task), "task_family": task.task_family, "day": day, "error": line, "hint": hint,
            "link": link, "at": datetime.now(UTC).isoformat(), "text": text}


def send(message: dict) -> None:
    """To every configured endpoint; failures are logged (without the URL) and swallowed."""
    cfg = config.notify()
    targets = [("Slack", os.environ.get(cfg.slack_webhook_env, ""), {"text": message["text"]}),
               ("webhook", os.environ.get(cfg.webhook_env, ""), message)]
    for name, url, payload in targets:
        if not url:
            continue
        try:
            requests.post(url, json=payload, timeout=cfg.timeout).raise_for_status()
        except Exception as exc:  # a notification never fails the pipeline
            log.warning("%s notification not delivered (%s); the event was: %s", name, type(exc).__name__, message["text"])


def _notify_once(event: str, task: luigi.Task, error: str, hint: str) -> None:
    """Once per task, event and error in a process: retries of the same failure do not repeat it."""
    key = (task.task_id, event, error)
    with _lock:
        if key in _sent:
            return
        _sent.add(key)
    send(compose(event, task, error, hint))


@luigi.Task.event_handler(luigi.Event.FAILURE)
def on_failure(task: luigi.Task, exception: BaseException) -> None:
    if getattr(exception, "per_run", False) and not runs.first_time(f"notified-{type(exception).__name__}"):
        return  # out of credits, or the usage cap: one notification for the run, not one per day
    _notify_once("failure", task, first_line(exception), hint_of(exception, getattr(task, "date", None)))


@luigi.Task.event_handler(luigi.Event.BROKEN_TASK)
def on_broken(task: luigi.Task, exception: BaseException) -> None:
    _notify_once("broken task", task, first_line(exception), "the task could not be scheduled: " + hint_of(exception, getattr(task, "date", None)))


@luigi.Task.event_handler(WARNING_EVENT)
def on_warning(task: luigi.Task, message: str) -> None:
    _notify_once("warning", task, message, "the day was published; check it with `flixluigi status`")
