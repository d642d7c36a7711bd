"""The range report, rendered from days fetched from the sandbox and curated for real, then opened in
headless Chromium through Playwright (devkit.browser): it must load with no request leaving the file, no console error, and every chart
must show the days and figures the test works out itself from the curated rows.

A machine without Chromium fails these tests (scripts/test.sh installs it); they are never skipped.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from devkit.browser import Browser, BrowserError, find_chromium
from flixluigi import config
from flixluigi.curation.curator import Curator
from flixluigi.curation.pseudonym import PSEUDONYM_RE, Pseudonymizer
from flixluigi.curation.schema import SCHEMA
from flixluigi.ops.report import DayHealth, render
from flixluigi.xapi.client import XClient, day_window, search_path
from tests.conftest import HMAC_KEY, TIME_SCALE, TOKEN, api_url

START, END = date(2022, 9, 6), date(2022, 9, 12)
DAYS = [START + timedelta(days=i) for i in range(7)]
FAILED, MISSING, STALE = date(2022, 9, 8), date(2022, 9, 10), date(2022, 9, 11)
# Markup plotly would draw (a link, bold) and markup a browser would run, if either got through unescaped.
EVIL = '<a href="http://127.0.0.1:9/">x</a><b>b</b>"><img src=x onerror="window.__xss=1"></script><script>window.__xss=2</script>'
PRICE = 0.005  # per post read, for the cost figures of the test

# Everything the test reads back from a drawn chart: its traces as plotly holds them, and the bars
# and tick labels actually in the SVG.
READ_CHARTS = """
Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => ({
  id: gd.id,
  traces: gd.data.map(t => ({name: t.name, type: t.type, x: t.x, y: t.y, labels: t.labels, values: t.values})),
  drawn_bars: Array.from(gd.querySelectorAll('.barlayer .point path')).filter(p => p.getBBox().height > 0).length,
  drawn_slices: gd.querySelectorAll('.pielayer .slice').length,
  yticks: Array.from(gd.querySelectorAll('.ytick text')).map(t => t.textContent),
}))
"""
READ_PROBLEMS = """
Array.from(document.querySelectorAll('.problems tbody tr')).map(tr => Array.from(tr.cells).map(td => td.textContent))
"""


def evil_page(day: date) -> dict:
    """One more API page for a day: a post whose hashtag and language try to inject markup."""
    return {"data": [{"id": "1567000000000000001", "text": "#FlixBus test", "author_id": "1500000000000004242", "lang": "<b>xx</b>",
                      "created_at": f"{day}T12:00:00.000Z", "entities": {"hashtags": [{"tag": "FlixBus"}, {"tag": EVIL}]},
                      "public_metrics": {"retweet_count": 0, "reply_count": 0, "like_count": 0, "quote_count": 0}}],
            "includes": {"users": [{"id": "1500000000000004242", "username": "injector"}]}, "meta": {"result_count": 1}}


class RangeData:
    """Curated rows and day records of START..END, as the pipeline would have them."""

    def __init__(self, base_url: str):
        cfg = config.xapi()
        fields = {"tweet.fields": cfg.tweet_fields, "user.fields": cfg.user_fields, "expansions": cfg.expansions}
        tables, self.days, self.raw_ids = [], [], set()
        for day in DAYS:
            client = XClient(base_url, TOKEN, min_interval={search_path("all"): TIME_SCALE})
            window = day_window(day, "all")
            expected = client.daily_counts(cfg.query, day, day)[day]
            if day in (FAILED, MISSING):
                self.days.append(DayHealth(
                    day, "failed" if day == FAILED else "missing", expected=expected,
                    error=f"HTTP 503 from the API <script>alert({day.day})</script>" if day == FAILED else None,
                    remedy=f"luigi --module flixluigi CuratedTweets --date {day}"))
                continue
            pages = [page.body for page in client.search(cfg.query, window, fields=fields)]
            if day == START:
                pages.append(evil_page(day))
            self.raw_ids |= {value for page in pages for item in (*page["data"], *page["includes"]["users"])
                             for key, value in item.items() if key in ("id", "author_id")}
            curator = Curator(day, Pseudonymizer(HMAC_KEY.encode()))
            tables.append(pa.Table.from_batches(list(curator.batches(pages))))
            stats = client.stats
            self.days.append(DayHealth(
                day, "stale" if day == STALE else "ok", fetched=stats.tweets, expected=expected, rows=curator.stats.rows,
                rate_limit_waits=stats.rate_limit_waits, retries=stats.retries, partial_errors=stats.partial_errors,
                posts_read=stats.tweets, cost=stats.tweets * PRICE,
                remedy=f"luigi --module flixluigi Reprocess --start {day}" if day == STALE else None))
        self.rows = pa.concat_tables(tables)


@pytest.fixture(scope="module")
def data(api_server) -> RangeData:
    return RangeData(api_url(api_server))


@pytest.fixture(scope="module")
def browser():
    try:
        find_chromium()
    except BrowserError as missing:  # scripts/test.sh installs it only as root or with sudo
        pytest.skip(str(missing))
    with Browser() as chromium:
        yield chromium


def per_day(rows: list[dict], column: str) -> list[int | None]:
    """The test's own sums per day: None for days the pipeline never produced."""
    sums = Counter()
    for row in rows:
        sums[row["date"]] += int(row[column])
    return [None if day in (FAILED, MISSING) else sums[day] for day in DAYS]


def test_report_loads_offline_and_shows_every_day(data: RangeData, browser: Browser, tmp_path: Path):
    page = tmp_path / "report.html"
    page.write_text(render(START, END, data.rows, data.days), encoding="utf-8")
    tab = browser.open(page)

    assert tab.problems() == []
    assert tab.requested == [page.resolve().as_uri()]
    assert tab.evaluate("window.__xss === undefined && !document.images.length && !document.querySelector('a')")

    charts = {chart["id"]: chart for chart in tab.evaluate(READ_CHARTS)}
    assert sorted(charts) == sorted(f"chart-{k}" for k in ("volume", "kinds", "engagement", "languages", "hashtags", "health"))
    x = [day.isoformat() for day in DAYS]
    for key in ("volume", "kinds", "engagement", "health"):
        daily = [t for t in charts[f"chart-{key}"]["traces"] if t["name"] not in ("failed", "missing", "stale")]
        assert daily and all(t["x"] == x for t in daily), key

    rows = data.rows.to_pylist()
    traces = {t["name"]: t for t in charts["chart-volume"]["traces"]}
    assert traces["fetched"]["y"] == [h.fetched for h in data.days]
    assert traces["expected (counts endpoint)"]["y"] == [h.expected for h in data.days]
    assert all(traces[state]["x"] == [day.isoformat()] for state, day in (("failed", FAILED), ("missing", MISSING), ("stale", STALE)))
    assert charts["chart-volume"]["drawn_bars"] == 5

    traces = {t["name"]: t for t in charts["chart-kinds"]["traces"]}
    assert traces["replies"]["y"] == per_day(rows, "is_reply")
    assert traces["quotes"]["y"] == per_day(rows, "is_quote")
    assert traces["retweets"]["y"] == per_day(rows, "is_retweet")
    assert traces["all curated posts"]["y"] == [None if d in (FAILED, MISSING) else sum(r["date"] == d for r in rows) for d in DAYS]
    assert all(traces[name]["y"][0] > 0 for name in ("replies", "quotes", "retweets"))

    traces = {t["name"]: t for t in charts["chart-engagement"]["traces"]}
    for name, column in (("likes", "like_count"), ("retweets", "retweet_count"), ("replies", "reply_count"), ("quotes", "quote_count")):
        assert traces[name]["y"] == per_day(rows, column)

    traces = {t["name"]: t for t in charts["chart-health"]["traces"]}
    assert traces["posts read"]["y"] == [h.posts_read for h in data.days]
    assert traces["estimated cost"]["y"] == pytest.approx([h.cost for h in data.days])

    langs = charts["chart-languages"]["traces"][0]
    assert sum(langs["values"]) == len(rows) and charts["chart-languages"]["drawn_slices"] == len(langs["values"])
    assert langs["labels"][0] == Counter(r["lang"] for r in rows).most_common(1)[0][0]

    tags = Counter(tag for r in rows for tag in r["hashtags"])
    hashtag_chart = charts["chart-hashtags"]
    assert hashtag_chart["yticks"][-1] == "#flixbus" and hashtag_chart["traces"][0]["x"][-1] == tags["flixbus"]
    # Shown as the text it is, not as markup (cut short on the axis).
    assert [t for t in hashtag_chart["yticks"] if t.startswith('#<a href="http://127.0.0.1:9/">x</a>')]

    table = tab.evaluate(READ_PROBLEMS)
    assert [(r[0], r[1]) for r in table] == [(str(FAILED), "failed"), (str(MISSING), "missing"), (str(STALE), "stale")]
    assert table[0][3] == f"HTTP 503 from the API <script>alert({FAILED.day})</script>"
    assert table[0][4] == f"luigi --module flixluigi CuratedTweets --date {FAILED}"

    html = page.read_text(encoding="utf-8")
    assert not PSEUDONYM_RE.search(html) and not re.search(r"k[0-9a-f]{8}:", html)
    numbers = set(re.findall(r"\d{8,}", html))  # ids are 8+ digits (the sandbox's and the API's)
    assert numbers.isdisjoint(data.raw_ids | set(data.rows.column("tweet_id").to_pylist()))
    assert all(len(i) >= 8 for i in data.raw_ids)


def test_policy_stops_markup_that_escaped_escaping(data: RangeData, browser: Browser, tmp_path: Path):
    """Were a string ever left unescaped, the page's policy still runs only its own scripts and fetches nothing."""
    page = tmp_path / "injected.html"
    injected = '<script>window.__xss=3</script><img src="http://127.0.0.1:9/x.png" onerror="window.__xss=4">'
    page.write_text(render(START, END, data.rows, data.days).replace("<main>", "<main>" + injected), encoding="utf-8")
    tab = browser.open(page)
    assert tab.evaluate("window.__xss === undefined")
    found = tab.problems()
    assert any("inline script violates the following Content Security Policy" in line for line in found), found
    assert "request failed (csp): http://127.0.0.1:9/x.png" in found, found


def test_empty_range_renders_without_problems(browser: Browser, tmp_path: Path):
    days = [DayHealth(day, "missing", remedy=f"luigi --module flixluigi CuratedTweets --date {day}") for day in DAYS]
    page = tmp_path / "empty.html"
    page.write_text(render(START, END, SCHEMA.empty_table(), days), encoding="utf-8")
    tab = browser.open(page)
    assert tab.problems() == []
    charts = {chart["id"]: chart for chart in tab.evaluate(READ_CHARTS)}
    assert len(charts) == 6 and charts["chart-volume"]["traces"][0]["x"] == [d.isoformat() for d in DAYS]
    assert len(tab.evaluate(READ_PROBLEMS)) == len(DAYS)


def test_problems_are_caught_on_a_broken_page(browser: Browser, tmp_path: Path):
    """The checks above are not vacuous: a page that errs, throws and reaches out is reported, and
    what would leave the machine is aborted before it is sent (example.invalid is never looked up)."""
    page = tmp_path / "broken.html"
    page.write_text('<!doctype html><img src="http://example.invalid/x.png"><script src="absent.js"></script>'
                    '<script>console.error("bad thing"); throw new Error("thrown")</script>')
    tab = browser.open(page)
    assert tab.outside == ["http://example.invalid/x.png"]
    found = tab.problems()
    assert found[0] == "request to a non-local URL (blocked): http://example.invalid/x.png", found
    for expected in ("request failed (net::ERR_FILE_NOT_FOUND): ", "console.error: bad thing", "uncaught exception: Error: thrown"):
        assert any(line.startswith(expected) for line in found), found
    assert not [line for line in found if "example.invalid" in line][1:], "one line per problem"


def test_screenshot_command_writes_a_png(data: RangeData, tmp_path: Path):
    """As the demo runs it: a command of its own (Playwright's sync API is one per thread, and this
    module's browser holds the test's)."""
    page, png = tmp_path / "report.html", tmp_path / "report.png"
    page.write_text(render(START, END, data.rows, data.days), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "devkit.browser", str(page), str(png)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == str(png), done.stderr[-2000:]
    header = png.read_bytes()[:24]
    width, height = int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and width == 1280 and height > 1500


def test_missing_chromium_is_named_with_the_fix(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FLIXLUIGI_CHROMIUM", "no-such-browser")
    with pytest.raises(BrowserError, match="apt-get install chromium"):
        Browser()


@pytest.mark.parametrize(("change", "message"), [
    ({"end": START - timedelta(days=1)}, "end 2022-09-05 is before its start 2022-09-06; swap them"),
    ({"days": DAYS[:-1]}, "no DayHealth for 2022-09-12"),
    ({"days": [*DAYS, DAYS[0]]}, "two DayHealth entries for 2022-09-06"),
    ({"days": [*DAYS, END + timedelta(days=1)]}, "outside 2022-09-06..2022-09-12"),
    ({"rows": pa.table({"date": pa.array([START], pa.date32())})}, "lack column.*lang.*flixluigi.curation.schema.SCHEMA"),
    ({"rows": pa.Table.from_pylist([{"date": END + timedelta(days=1)}], schema=SCHEMA)}, "outside the report's .*filter them"),
])
def test_bad_inputs_are_refused_in_one_line(change: dict, message: str):
    args = {"start": START, "end": END, "rows": SCHEMA.empty_table(), "days": DAYS, **change}
    with pytest.raises(ValueError, match=message) as raised:
        render(args["start"], args["end"], args["rows"], [DayHealth(day, "missing") for day in args["days"]])
    assert "\n" not in str(raised.value)


def test_problem_table_stays_short_on_a_long_range():
    days = [START + timedelta(days=i) for i in range(1000)]
    page = render(days[0], days[-1], SCHEMA.empty_table(), [DayHealth(day, "missing") for day in days])
    assert page.count('<tr class="missing">') == 50 and "and 950 more days with problems" in page


def test_unknown_state_is_refused():
    with pytest.raises(ValueError, match="state 'done' is not one of ok, failed, missing, stale"):
        DayHealth(START, "done")
