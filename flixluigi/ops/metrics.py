"""`flixluigi metrics`: the pipeline's own figures in Prometheus's text format, from the stored state.

For node_exporter's textfile collector (`flixluigi metrics > DIR/flixluigi.prom.tmp && mv ...`
from cron), or pushed to a Pushgateway (`--push URL`, for hosts no Prometheus scrapes): luigid's
/metrics counts tasks, this says what the days hold. Totals over every day
from `[metrics] first_day` through yesterday, and the latest complete day, rather than one series
per day: a decade of days would be thousands of series. Everything is read from the same
pointers, records and failure markers `flixluigi status` reads (a month's days per listing, in
parallel), so any host with read access gives the same figures; nothing is kept between runs.
The text is written by hand: prometheus_client is only luigid's extra, not a core dependency.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time, timedelta

import requests

from flixluigi import config
from flixluigi.errors import SettingsError
from flixluigi.ops.status import DayStatus, status

READERS = 8  # months read at once
PUSH_JOB = "flixluigi"
PUSH_TIMEOUT = 30.0
# name, help, unit-free getter of a day's figure (None when the day has no such figure)
FIGURES = (
    ("posts_read", "posts read from the X API (billed)", lambda s: s.pointer and s.pointer.get("posts_read")),
    ("cost_usd", "estimated X API cost in USD of the stored fetches", lambda s: s.pointer and s.pointer.get("cost")),
    ("rows", "rows in the curated table", lambda s: s.record and s.record.get("rows")),
    ("fetch_seconds", "seconds the stored raw fetches took", lambda s: s.pointer and s.pointer.get("duration_seconds")),
    ("curate_seconds", "seconds the current curated builds took", lambda s: s.record and s.record.get("duration_seconds")),
)


def months(first: date, last: date) -> Iterator[tuple[date, date]]:
    """(first, last) day of each calendar month in first..last, clipped to it."""
    start = first
    while start <= last:
        following = (start.replace(day=1) + timedelta(days=32)).replace(day=1)
        yield start, min(last, following - timedelta(days=1))
        start = following


def gather(first: date, last: date) -> list[DayStatus]:
    """Every day's status, a month per read, several months at once."""
    with ThreadPoolExecutor(READERS) as pool:
        return [day for month in pool.map(lambda span: status(*span), months(first, last)) for day in month]


def _line(name: str, value: float, labels: str = "") -> str:
    """One sample; whole numbers without a fraction (a timestamp needs all ten digits), others to 6 decimals."""
    text = str(int(value)) if float(value).is_integer() else repr(round(float(value), 6))
    return f"flixluigi_{name}{{{labels}}} {text}" if labels else f"flixluigi_{name} {text}"


def render(days: list[DayStatus], now: datetime) -> str:
    """The exposition text of a list of day statuses (oldest first) at `now`. Pure."""
    complete = [s for s in days if s.curated == "ok"]
    latest = complete[-1] if complete else None
    out = []

    def gauge(name: str, help: str, samples: list[tuple[str, float]]) -> None:
        out.extend([f"# HELP flixluigi_{name} {help}", f"# TYPE flixluigi_{name} gauge"])
        out.extend(_line(name, value, labels) for labels, value in samples)

    for name, help, figure in FIGURES:
        samples = [('days="all"', sum(figure(s) or 0 for s in days))]
        if latest:
            samples.append(('days="latest"', figure(latest) or 0))
        gauge(name, f"{help}: all stored days, and the latest complete day", samples)
    gauge("days", "days from [metrics] first_day through yesterday (UTC) by state; failed: the last try failed",
          [(f'state="{state}"', count) for state, count in (
              ("complete", len(complete)), ("missing", sum(s.curated == "missing" for s in days)),
              ("stale", sum(s.curated == "stale" for s in days)), ("failed", sum(s.failure is not None for s in days)))])
    if latest:
        end = datetime.combine(latest.day + timedelta(days=1), time(), UTC)
        gauge("last_complete_day_timestamp_seconds", "start (00:00 UTC) of the newest complete day",
              [("", datetime.combine(latest.day, time(), UTC).timestamp())])
        gauge("last_complete_day_age_seconds", "seconds since the end of the newest complete day",
              [("", round((now - end).total_seconds()))])
    return "\n".join(out) + "\n"


def metrics_text(now: datetime | None = None, first_day: str | None = None) -> str:
    """The metrics of the configured bucket from `first_day` (default [metrics] first_day) through yesterday."""
    now = now or datetime.now(UTC)
    setting, yesterday = first_day or config.metrics().first_day, now.date() - timedelta(days=1)
    if not setting:
        raise SettingsError("[metrics] first_day is not set; set it (or pass --first-day) to the first UTC day the pipeline "
                            "should hold, e.g. 2022-09-01")
    try:
        first = date.fromisoformat(setting)
    except ValueError:
        raise SettingsError(f"[metrics] first_day = {setting!r} is not a date; use YYYY-MM-DD, e.g. 2022-09-01") from None
    if first > yesterday:
        raise SettingsError(f"[metrics] first_day = {first} is not before today ({now.date()} UTC); set the first day "
                            "the pipeline should hold")
    return render(gather(first, yesterday), now)


def push(text: str, gateway: str) -> str:
    """PUT the text to a Pushgateway as job `flixluigi`: it replaces that job's previous figures whole."""
    url = f"{gateway.rstrip('/')}/metrics/job/{PUSH_JOB}"
    try:
        answer = requests.put(url, data=text.encode(), headers={"Content-Type": "text/plain; version=0.0.4"}, timeout=PUSH_TIMEOUT)
    except requests.RequestException as exc:
        raise OSError(f"the Pushgateway at {gateway} is unreachable ({type(exc).__name__}); start it or fix --push") from None
    if answer.status_code >= 300:
        raise OSError(f"the Pushgateway at {url} answered HTTP {answer.status_code}: {' '.join(answer.text.split())[:200]}")
    return f"pushed {sum(not line.startswith('#') for line in text.splitlines())} samples to {url}"
