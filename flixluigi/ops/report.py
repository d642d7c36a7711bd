"""A range of days as one self-contained HTML page: what #FlixBus talk did, and how the pipeline fared.

`render` is pure: curated rows and one `DayHealth` per day in, HTML text out; `report_html`
reads them from the store. The page carries
its charting library inline (plotly.js, from the `plotly` wheel) and a Content-Security-Policy
that forbids every request, and every script but its own two, so opening the file never reaches
another host. Only aggregates
reach the page: the rows are cut to the columns the charts count, so no tweet id, pseudonym or
text can leak into it. Every string from the data (hashtags, languages, errors) is HTML-escaped
before it reaches the page or a chart label (plotly reads a small HTML subset in labels), and the
charts' JSON has `<`, `>` and `/` escaped, so user content cannot close the script it sits in.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import plotly.graph_objects as go
import plotly.io as pio
import pyarrow as pa
import pyarrow.compute as pc
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from flixluigi.curation.schema import SCHEMA
from flixluigi.dates import day_range
from flixluigi.errors import InvalidRange
from flixluigi.ops.status import DayStatus, status
from flixluigi.store.lake import CuratedTable

STATES = ("ok", "failed", "missing", "stale")
COLUMNS = ("date", "lang", "is_reply", "is_quote", "is_retweet", "retweet_count", "reply_count", "like_count", "quote_count",
           "hashtags")
TOP_HASHTAGS = 15
TOP_LANGUAGES = 8
LABEL_CHARS = 40  # a longer hashtag is cut on the axis (shown whole on hover), or it squeezes the bars away
PROBLEM_ROWS = 50  # the table stays short on a long backfill; the volume chart marks every day
COLOURS = {"fetched": "#2a6fdb", "expected": "#222222", "ok": "#2e9d5b", "failed": "#d62728", "missing": "#7f7f7f",
           "stale": "#e69f00", "reply": "#2a6fdb", "quote": "#9467bd", "retweet": "#17becf", "posts": "#222222"}
# Nothing may be fetched: styles are inline, pictures data: URLs (plotly's download button), and only the
# page's own two scripts, named by hash, may run: markup that slipped through escaping could not execute.
CSP = "default-src 'none'; script-src {scripts}; style-src 'unsafe-inline'; img-src data: blob:; font-src data:"
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
DAY_MS = 86_400_000
SHORT_RANGE = 62  # days: up to this, one tick a day, point markers and grouped bars; beyond, lines


@dataclass(frozen=True)
class DayHealth:
    """What the pipeline knows of one day: its state, counts, costs, and the command that fixes it.

    `fetched` is tweets received from the search API, `expected` the counts endpoint's total and
    `rows` the curated rows; None where a figure is unknown (a day never fetched, no count asked).
    A day whose state is not "ok", or that carries an `error` (a counts mismatch, say), is listed
    in the report's problem table with its `remedy`, the command that fixes it.
    """

    day: date
    state: str
    fetched: int | None = None
    expected: int | None = None
    rows: int | None = None
    rate_limit_waits: int = 0
    retries: int = 0
    partial_errors: int = 0
    posts_read: int | None = None
    cost: float | None = None
    error: str | None = None
    remedy: str | None = None

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"DayHealth for {self.day}: state {self.state!r} is not one of {', '.join(STATES)}")

    @property
    def has_problem(self) -> bool:
        return self.state != "ok" or self.error is not None


def render(start: date, end: date, rows: pa.Table, days: Sequence[DayHealth]) -> str:
    """The report of [start, end] (inclusive) as a full HTML document.

    `rows` are the curated rows of the range (at least COLUMNS); `days` has one entry per day.
    """
    range_days = _range(start, end)
    health = _health_by_day(range_days, days)
    table = _rows_in_range(rows, start, end)
    per_day = _per_day(table, health)
    x = [d.isoformat() for d in range_days]
    charts = [
        ("volume", "Tweets per day: fetched against the counts endpoint", _volume(x, health)),
        ("kinds", "Replies, quotes and retweets per day", _kinds(x, per_day)),
        ("engagement", "Engagement with each day's posts", _engagement(x, per_day)),
        ("languages", "Languages over the range", _languages(table)),
        ("hashtags", f"Top {TOP_HASHTAGS} hashtags over the range", _hashtags(table)),
        ("health", "Pipeline health per day", _health(x, health)),
    ]
    return _page(start, end, health, table, charts)


def _range(start: date, end: date) -> list[date]:
    if end < start:
        raise InvalidRange(f"the report's end {end} is before its start {start}; swap them")
    return day_range(start, end)


def _health_by_day(range_days: list[date], days: Sequence[DayHealth]) -> list[DayHealth]:
    by_day: dict[date, DayHealth] = {}
    for entry in days:
        if entry.day in by_day:
            raise ValueError(f"two DayHealth entries for {entry.day}; pass one per day")
        by_day[entry.day] = entry
    if extra := sorted(set(by_day) - set(range_days)):
        raise ValueError(f"DayHealth for {extra[0]} is outside {range_days[0]}..{range_days[-1]}; pass only the range's days")
    if absent := [d for d in range_days if d not in by_day]:
        raise ValueError(f"no DayHealth for {absent[0]} ({len(absent)} days lack one); pass one per day of the range, "
                         "state='missing' for days never produced")
    return [by_day[d] for d in range_days]


def _rows_in_range(rows: pa.Table, start: date, end: date) -> pa.Table:
    if missing := [c for c in COLUMNS if c not in rows.column_names]:
        raise ValueError(f"the rows lack column(s) {', '.join(missing)}; pass curated rows (flixluigi.curation.schema.SCHEMA)")
    table = rows.select(list(COLUMNS))
    if table.num_rows:
        low, high = pc.min_max(table["date"]).values()
        if low.as_py() < start or high.as_py() > end:
            raise ValueError(f"the rows hold days {low}..{high}, outside the report's {start}..{end}; filter them by date")
    return table


def _per_day(table: pa.Table, health: list[DayHealth]) -> dict[str, list[int | None]]:
    """Counts per day of the range; None for a day with no rows whose state says it was not produced."""
    sums = ("is_reply", "is_quote", "is_retweet", "retweet_count", "reply_count", "like_count", "quote_count")
    grouped = table.group_by("date").aggregate([("date", "count"), *((name, "sum") for name in sums)])
    found = {row["date"]: row for row in grouped.to_pylist()}
    columns = {"posts": "date_count", **{name: f"{name}_sum" for name in sums}}
    per_day: dict[str, list[int | None]] = {name: [] for name in columns}
    for entry in health:
        row = found.get(entry.day)
        for name, column in columns.items():
            per_day[name].append(int(row[column] or 0) if row else (0 if entry.state == "ok" else None))
    return per_day


def _label(text: str) -> str:
    """User text as a chart label: plotly reads a small HTML subset in labels, so escape it."""
    return html.escape(text, quote=False)


def _cut(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[:LABEL_CHARS - 1] + "…"


def _volume(x: list[str], health: list[DayHealth]) -> go.Figure:
    figure = go.Figure()
    figure.add_bar(name="fetched", x=x, y=[h.fetched for h in health], marker_color=COLOURS["fetched"])
    figure.add_scatter(name="expected (counts endpoint)", x=x, y=[h.expected for h in health], mode=_line_mode(x),
                       line={"color": COLOURS["expected"], "dash": "dot"})
    for state in STATES[1:]:
        marked = [h for h in health if h.state == state]
        if marked:
            figure.add_scatter(
                name=state, x=[h.day.isoformat() for h in marked], y=[h.fetched or h.expected or 0 for h in marked],
                mode="markers", marker={"symbol": "x" if state == "failed" else "diamond-open", "size": 14,
                                        "color": COLOURS[state], "line": {"width": 2}},
                hovertext=[_label(h.error or state) for h in marked], hoverinfo="x+name+text")
    # A band behind each day that is not ok; set at once (add_vrect re-validates all shapes: quadratic).
    bands = [{"type": "rect", "xref": "x", "yref": "paper", "x0": f"{h.day - timedelta(days=1)}T12:00", "x1": f"{h.day}T12:00",
              "y0": 0, "y1": 1, "fillcolor": COLOURS[h.state], "opacity": 0.12, "line": {"width": 0}, "layer": "below"}
             for h in health if h.state != "ok"]
    figure.update_layout(yaxis_title="tweets", barmode="overlay", shapes=bands)
    return _day_axis(figure, len(x))


def _kinds(x: list[str], per_day: dict[str, list[int | None]]) -> go.Figure:
    figure = go.Figure()
    for name, column in (("replies", "is_reply"), ("quotes", "is_quote"), ("retweets", "is_retweet")):
        if len(x) <= SHORT_RANGE:
            figure.add_bar(name=name, x=x, y=per_day[column], marker_color=COLOURS[column[3:]])
        else:  # hundreds of grouped bars are noise
            figure.add_scatter(name=name, x=x, y=per_day[column], mode="lines", line={"color": COLOURS[column[3:]]})
    figure.add_scatter(name="all curated posts", x=x, y=per_day["posts"], mode=_line_mode(x), line={"color": COLOURS["posts"]})
    figure.update_layout(yaxis_title="posts", barmode="group")
    return _day_axis(figure, len(x))


def _engagement(x: list[str], per_day: dict[str, list[int | None]]) -> go.Figure:
    figure = go.Figure()
    for name, column in (("likes", "like_count"), ("retweets", "retweet_count"), ("replies", "reply_count"),
                         ("quotes", "quote_count")):
        figure.add_scatter(name=name, x=x, y=per_day[column], mode=_line_mode(x))
    figure.update_layout(yaxis_title="received by the day's posts (public metrics)")
    return _day_axis(figure, len(x))


def _top(values: pa.Array, limit: int) -> list[tuple[str, int]]:
    """The most frequent values, ties by value, for a stable order."""
    counts = pc.value_counts(values).to_pylist()
    return sorted(((c["values"], c["counts"]) for c in counts), key=lambda pair: (-pair[1], pair[0]))[:limit]


def _languages(table: pa.Table) -> go.Figure:
    ranked = _top(pc.fill_null(table["lang"], "unknown").combine_chunks(), len(table))
    shown, rest = ranked[:TOP_LANGUAGES], sum(count for _, count in ranked[TOP_LANGUAGES:])
    if rest:
        shown.append(("other", rest))
    figure = go.Figure(go.Pie(labels=[_label(lang) for lang, _ in shown], values=[count for _, count in shown], hole=0.45,
                              sort=False, textinfo="label+percent"))
    figure.update_layout(showlegend=False)
    return figure


def _hashtags(table: pa.Table) -> go.Figure:
    tags = _top(pc.list_flatten(table["hashtags"]).combine_chunks() if table.num_rows else pa.array([], pa.string()),
                TOP_HASHTAGS)[::-1]
    names = ["#" + tag for tag, _ in tags]
    figure = go.Figure(go.Bar(x=[count for _, count in tags], y=[_label(_cut(name)) for name in names], orientation="h",
                              hovertext=[_label(name) for name in names], hoverinfo="x+text", marker_color=COLOURS["fetched"]))
    figure.update_layout(xaxis_title="posts", yaxis={"type": "category", "automargin": True})
    return figure


def _health(x: list[str], health: list[DayHealth]) -> go.Figure:
    figure = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                           subplot_titles=("waits, retries and partial errors", "posts read", "estimated cost (USD)"))
    for name, values in (("rate-limit waits", [h.rate_limit_waits for h in health]), ("retries", [h.retries for h in health]),
                         ("partial errors", [h.partial_errors for h in health])):
        figure.add_bar(name=name, x=x, y=values, row=1, col=1)
    figure.add_bar(name="posts read", x=x, y=[h.posts_read for h in health], row=2, col=1, marker_color=COLOURS["fetched"])
    figure.add_bar(name="estimated cost", x=x, y=[h.cost for h in health], row=3, col=1, marker_color=COLOURS["stale"])
    figure.update_layout(barmode="group", height=620)
    figure.update_yaxes(tickprefix="$", row=3, col=1)
    return _day_axis(figure, len(x))


def _line_mode(x: list[str]) -> str:
    return "lines+markers" if len(x) <= SHORT_RANGE else "lines"


def _day_axis(figure: go.Figure, days: int) -> go.Figure:
    """Dates on x; one tick a day on short ranges (plotly would otherwise tick at noon), automatic on long ones."""
    figure.update_xaxes(type="date")
    figure.update_yaxes(rangemode="tozero")
    figure.update_traces(marker_line_width=0, selector={"type": "bar"})  # bar outlines wash out a long range
    if days <= SHORT_RANGE // 2:
        figure.update_xaxes(dtick=DAY_MS, tickformat="%b %d")
    return figure.update_layout(hovermode="x unified")


def _page(start: date, end: date, health: list[DayHealth], table: pa.Table,
          charts: list[tuple[str, str, go.Figure]]) -> str:
    for _, _, figure in charts:
        figure.update_layout(template="plotly_white", margin={"l": 60, "r": 20, "t": 30, "b": 40}, height=figure.layout.height or 380,
                             legend={"orientation": "h", "y": -0.15})
    figures = ",".join(f'{{"id": "chart-{key}", "figure": {pio.to_json(figure)}}}' for key, _, figure in charts)
    sections = "\n".join(f'<section class="card {key}"><h2>{html.escape(title)}</h2><div id="chart-{key}" class="chart"></div></section>'
                         for key, title, _ in charts)
    title = f"#FlixBus {start.isoformat()} to {end.isoformat()}"
    scripts = [get_plotlyjs(), f"""
const figures = [{figures}];
const config = {pio.json.to_json_plotly(PLOTLY_CONFIG)};
window.pageReady = Promise.all(figures.map(f => Plotly.newPlot(f.id, f.figure.data, f.figure.layout, config)));
"""]
    csp = CSP.format(scripts=" ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in scripts))
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<header><h1>{html.escape(title)}</h1>{_summary(health, table)}</header>
<main>
{sections}
<section class="card problems"><h2>Days with problems</h2>{_problems(health)}</section>
</main>
{"".join(f"<script>{script}</script>" for script in scripts)}
</body>
</html>
"""


def _summary(health: list[DayHealth], table: pa.Table) -> str:
    states = {state: sum(h.state == state for h in health) for state in STATES}
    costs = [h.cost for h in health if h.cost is not None]
    read = [h.posts_read for h in health if h.posts_read is not None]
    facts = [(f"{states['ok']} of {len(health)}", "days ok"),
             *((str(n), f"days {state}") for state, n in states.items() if state != "ok" and n),
             (f"{table.num_rows:,}", "curated posts"),
             (f"{sum(h.expected for h in health if h.expected is not None):,}", "expected by the counts endpoint"),
             (f"{sum(read):,}" if read else "n/a", "posts read"),
             (f"${sum(costs):,.2f}" if costs else "n/a", "estimated cost")]
    return '<dl class="facts">' + "".join(f"<div><dt>{html.escape(value)}</dt><dd>{html.escape(what)}</dd></div>"
                                          for value, what in facts) + "</dl>"


def _problems(health: list[DayHealth]) -> str:
    problems = [h for h in health if h.has_problem]
    if not problems:
        return '<p class="none">None: every day of the range is ok.</p>'

    def count(value: int | None) -> str:
        return "?" if value is None else f"{value:,}"

    body = "".join(
        f'<tr class="{h.state}"><td>{h.day.isoformat()}</td><td><span class="state {h.state}">{h.state}</span></td>'
        f"<td>{count(h.fetched)} / {count(h.expected)}</td><td>{html.escape(h.error or '')}</td>"
        f"<td>{f'<code>{html.escape(h.remedy)}</code>' if h.remedy else '&mdash;'}</td></tr>"
        for h in problems[:PROBLEM_ROWS])
    if len(problems) > PROBLEM_ROWS:
        body += f'<tr class="more"><td colspan="5">and {len(problems) - PROBLEM_ROWS:,} more days with problems</td></tr>'
    return ('<table><thead><tr><th>day</th><th>state</th><th>fetched / expected</th><th>error</th><th>what to run</th></tr>'
            f"</thead><tbody>{body}</tbody></table>")


def _day_health(s: DayStatus) -> DayHealth:
    """What the report shows of a day, from its status."""
    pointer, record, failure = s.pointer or {}, s.record or {}, s.failure or {}
    state = "failed" if failure else "ok" if s.curated == "ok" else s.curated
    remedy = {"failed": failure.get("hint"), "missing": f"luigi --module flixluigi CuratedTweets --date {s.day} --local-scheduler",
              "stale": f"luigi --module flixluigi CuratedTweets --date {s.day} --local-scheduler"}.get(state)
    return DayHealth(day=s.day, state=state, fetched=pointer.get("tweets"), expected=pointer.get("expected_tweets"),
                     rows=record.get("rows"), rate_limit_waits=pointer.get("rate_limit_waits", 0),
                     retries=pointer.get("retries", 0), partial_errors=pointer.get("partial_errors", 0),
                     posts_read=pointer.get("posts_read"), cost=pointer.get("cost"), error=failure.get("error"),
                     remedy=remedy)


def report_html(start: date, end: date) -> str:
    """The HTML report of a range as stored: curated rows of the current versions and each day's health."""
    rows = CuratedTable.from_config().read(start, end, columns=list(COLUMNS))
    if not rows.num_columns:  # no table yet
        rows = SCHEMA.empty_table().select(list(COLUMNS))
    return render(start, end, rows, [_day_health(s) for s in status(start, end)])


STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0; background: #f4f5f7;
       color: #1d1d1f; }
header { padding: 20px 32px 8px; }
h1 { font-size: 22px; margin: 0 0 12px; }
h2 { font-size: 15px; margin: 0 0 8px; }
.facts { display: flex; flex-wrap: wrap; gap: 12px; margin: 0; }
.facts div { background: #fff; border-radius: 8px; padding: 8px 14px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.facts dt { font-size: 18px; font-weight: 600; }
.facts dd { margin: 0; color: #555; font-size: 12px; }
main { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 16px; padding: 16px 32px 32px; }
.card { background: #fff; border-radius: 8px; padding: 14px 16px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.volume, .health, .problems { grid-column: 1 / -1; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #e4e4e7; vertical-align: top; }
td:nth-child(-n+3), th:nth-child(-n+3), code { white-space: nowrap; }
code { background: #f4f5f7; padding: 2px 4px; border-radius: 4px; }
.state { padding: 1px 8px; border-radius: 10px; color: #fff; font-size: 12px; }
.state.ok { background: #2e9d5b; } .state.failed { background: #d62728; }
.state.missing { background: #7f7f7f; } .state.stale { background: #e69f00; }
.none { color: #2e9d5b; }
"""
