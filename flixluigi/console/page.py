"""The console's HTML: the calendar, its legend and totals, the run form, the runs. Pure: data in, text out.

The calendar is rendered here, on the server, so it is right without script; the page's script
only runs the form (dry run, then confirm), follows a run and redraws the calendar from this same
HTML when a run ends. Everything inline under a nonce: the page loads nothing from anywhere.
"""

from __future__ import annotations

import calendar as cal
from datetime import date
from html import escape
from urllib.parse import urlencode

from flixluigi.console.days import DayView

LEGEND = (("ok", "ok"), ("stale", "stale"), ("missing", "missing"), ("failed", "failed"), ("compliance", "compliance due"))
FAILED_SHOWN = 20  # failed days listed with their reasons under the calendar (all have it on hover)
TASK_HELP = {"Backfill": "fetch and build the days that are missing", "Reprocess": "rebuild stored days (new versions)",
             "Compliance": "apply X's batch compliance to stored days"}


def span(view: str, anchor: date) -> tuple[date, date]:
    """The first and last day a month or year view shows."""
    if view == "year":
        return date(anchor.year, 1, 1), date(anchor.year, 12, 31)
    return anchor.replace(day=1), anchor.replace(day=cal.monthrange(anchor.year, anchor.month)[1])


def _shift(view: str, anchor: date, step: int) -> date:
    if view == "year":
        return date(anchor.year + step, 1, 1)
    month = anchor.year * 12 + anchor.month - 1 + step
    return date(month // 12, month % 12 + 1, 1)


def _cell(view: DayView, small: bool) -> str:
    money = f"${view.cost:.2f}" if view.cost is not None else ""
    posts = f"{view.posts:,}" if view.posts is not None else ""
    title = f"{view.day} {view.state}" + (f": {view.reason}" if view.reason else "") + (f" · {posts} posts {money}" if posts else "")
    body = "" if small else f"<b>{view.day.day}</b><span>{posts}</span><span>{money}</span>"
    return (f'<div class="day {view.state}" data-date="{view.day}" data-state="{view.state}" '
            f'title="{escape(title)}">{body}</div>')


def _month(year: int, month: int, by_day: dict[date, DayView], small: bool) -> str:
    cells = ['<div class="pad"></div>'] * cal.monthrange(year, month)[0]
    cells += [_cell(by_day[d], small) for d in (date(year, month, n) for n in range(1, cal.monthrange(year, month)[1] + 1))
              if d in by_day]
    heads = "" if small else "".join(f'<div class="head">{name}</div>' for name in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"))
    return (f'<section class="month{" small" if small else ""}"><h3>{cal.month_name[month]} {year}</h3>'
            f'<div class="grid">{heads}{"".join(cells)}</div></section>')


def calendar_html(views: list[DayView], totals: dict, view: str, anchor: date) -> str:
    """The calendar block: navigation, legend, months, totals line (what the script redraws)."""
    by_day = {v.day: v for v in views}
    months = [(anchor.year, m) for m in range(1, 13)] if view == "year" else [(anchor.year, anchor.month)]
    first, last = span(view, anchor)
    label = str(anchor.year) if view == "year" else f"{cal.month_name[anchor.month]} {anchor.year}"

    def link(v: str, a: date, text: str) -> str:
        return f'<a href="/?{urlencode({"view": v, "at": a.isoformat()})}">{text}</a>'

    nav = " ".join([link(view, _shift(view, anchor, -1), "&larr;"), f"<strong>{label}</strong>",
                    link(view, _shift(view, anchor, 1), "&rarr;"), "·",
                    link("year" if view == "month" else "month", anchor, "year" if view == "month" else "month"), "·",
                    f'<a href="/report?{urlencode({"start": first.isoformat(), "end": last.isoformat()})}" '
                    f'target="_blank" rel="noopener">range report</a>'])
    legend = "".join(f'<span class="key {state}"></span>{text} ' for state, text in LEGEND)
    line = (f'{totals["days"]} days: {totals["ok"]} ok, {totals["stale"]} stale, {totals["missing"]} missing, '
            f'{totals["failed"]} failed, {totals["compliance"]} compliance due · {totals["posts"]:,} posts · '
            f'${totals["cost"]:.2f}')
    failed = [v for v in views if v.state == "failed"]
    reasons = "".join(f"<li>{v.day}: {escape(v.reason)}</li>" for v in failed[:FAILED_SHOWN])
    more = f"<li>and {len(failed) - FAILED_SHOWN} more failed days</li>" if len(failed) > FAILED_SHOWN else ""
    return (f'<div id="calendar" data-start="{first}" data-end="{last}"><nav>{nav}</nav><p class="legend">{legend}</p>'
            f'<div class="months {view}">{"".join(_month(y, m, by_day, view == "year") for y, m in months)}</div>'
            f'<p id="totals">{escape(line)}</p><ul id="failures">{reasons}{more}</ul></div>')


def runs_html(runs: list[dict]) -> str:
    rows = "".join(
        f'<tr data-run="{escape(r["id"])}"><td><a href="#" class="show" data-run="{escape(r["id"])}">{escape(r["id"])}</a></td>'
        f'<td>{escape(r["task"])}{" --refetch" if r["refetch"] else ""}</td><td>{r["start"]}..{r["end"]}</td>'
        f'<td class="state {r["state"]}">{r["state"]}</td><td>{r["progress"]["done"]}/{r["progress"]["tasks"]}</td>'
        f'<td>{escape(r["requester"])}</td><td>{escape(r["created"][:19])}Z</td>'
        f'<td><a href="{escape(r["luigid"])}" target="_blank" rel="noopener">luigid</a></td></tr>' for r in runs[:50])
    return (f'<table id="runs"><thead><tr><th>run</th><th>task</th><th>days</th><th>state</th><th>tasks done</th>'
            f'<th>by</th><th>started</th><th></th></tr></thead><tbody>{rows}</tbody></table>')


def page(calendar_block: str, runs_block: str, xsrf: str, nonce: str, scheduler: str, default_day: date) -> str:
    options = "".join(f'<option value="{t}">{t}: {escape(h)}</option>' for t, h in TASK_HELP.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>flixluigi console</title><link rel="icon" href="data:,">
<meta name="xsrf" content="{escape(xsrf)}"><style>{STYLE}</style></head>
<body><header><h1>flixluigi console</h1><a href="{escape(scheduler)}" target="_blank" rel="noopener">luigid</a>
<form method="post" action="/logout" class="inline"><input type="hidden" name="_xsrf" value="{escape(xsrf)}">
<button>log out</button></form></header>
{calendar_block}
<h2>Run</h2>
<form id="run-form"><input type="hidden" name="_xsrf" value="{escape(xsrf)}">
<label>task <select name="task">{options}</select></label>
<label>start <input name="start" required placeholder="YYYY-MM-DD" value="{default_day}"></label>
<label>end <input name="end" placeholder="(start)"></label>
<label><input type="checkbox" name="refetch"> --refetch (Reprocess: read the API again)</label>
<button type="submit" id="dry-run">Dry run</button></form>
<p id="error" role="alert"></p>
<div id="plan" hidden><pre id="plan-lines"></pre><p id="plan-cost"></p><button id="confirm">Confirm</button></div>
<div id="run" hidden><p><span id="run-title"></span> <strong id="run-state"></strong> <span id="run-progress"></span>
<a id="run-luigid" target="_blank" rel="noopener">task in luigid</a> <button id="cancel" hidden>Cancel</button></p>
<h3>Summary</h3><pre id="run-summary"></pre><h3>Log (filtered)</h3><pre id="run-log"></pre></div>
<h2>Runs</h2>{runs_block}
<script nonce="{nonce}">{SCRIPT}</script></body></html>"""


def login(xsrf: str, message: str = "") -> str:
    note = f'<p id="error" role="alert">{escape(message)}</p>' if message else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>flixluigi console: log in</title><link rel="icon" href="data:,"><style>{STYLE}</style></head>
<body><h1>flixluigi console</h1>{note}<form method="post" action="/login">
<input type="hidden" name="_xsrf" value="{escape(xsrf)}">
<label>console token <input type="password" name="token" autocomplete="current-password" required></label>
<button type="submit">Log in</button></form></body></html>"""


STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}header{display:flex;gap:1em;align-items:baseline}
.inline{display:inline}.months{display:flex;flex-wrap:wrap;gap:1.2em}.grid{display:grid;grid-template-columns:repeat(7,5.2em);gap:3px}
.small .grid{grid-template-columns:repeat(7,1.1em);gap:2px}.head{font-size:11px;color:#666}
.day{border-radius:3px;min-height:3.4em;padding:2px 4px;font-size:11px;display:flex;flex-direction:column;color:#111}
.small .day{min-height:1.1em;padding:0}.day.ok{background:#7bc88f}.day.stale{background:#f2c14e}
.day.missing{background:#d5d5d5}.day.failed{background:#e06666;color:#fff}.day.compliance{background:#6fa8dc}
.key{display:inline-block;width:1em;height:1em;border-radius:2px;vertical-align:middle;margin:0 .3em 0 .8em}
.key.ok{background:#7bc88f}.key.stale{background:#f2c14e}.key.missing{background:#d5d5d5}.key.failed{background:#e06666}
.key.compliance{background:#6fa8dc}#error{color:#b00}pre{background:#f6f6f6;padding:.5em;max-height:20em;overflow:auto}
table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}
.state.success{color:#1a7f37}.state.failed{color:#b00}.state.cancelled{color:#777}label{margin-right:1em}
"""

SCRIPT = """
const xsrf = document.querySelector('meta[name=xsrf]').content;
const $ = (id) => document.getElementById(id);
let asked = null, following = null;
async function api(method, path, body) {
  const answer = await fetch(path, {method, credentials: 'same-origin',
    headers: {'Content-Type': 'application/json', 'X-XSRFToken': xsrf}, body: body ? JSON.stringify(body) : undefined});
  const data = await answer.json();
  if (!answer.ok) throw new Error(data.error || answer.statusText);
  return data;
}
function fail(error) { $('error').textContent = error.message; }
async function redraw() {
  const html = await (await fetch(location.href, {credentials: 'same-origin'})).text();
  const fresh = new DOMParser().parseFromString(html, 'text/html');
  for (const id of ['calendar', 'runs']) document.getElementById(id).replaceWith(fresh.getElementById(id));
  bindRuns();
}
$('run-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('error').textContent = '';
  const form = new FormData(event.target);
  asked = {task: form.get('task'), start: form.get('start'), end: form.get('end') || null,
           refetch: form.get('refetch') === 'on'};
  try {
    const {plan} = await api('POST', '/api/runs', {...asked, dry_run: true});
    $('plan-lines').textContent = plan.days.map((d) => `${d.date}: ${d.action}` +
      (d.reads_api ? (d.expected_posts === null ? ' (posts unknown)' : ` (${d.expected_posts} posts expected)`) : '')).join('\\n');
    $('plan-cost').textContent = plan.cost_line;
    $('confirm').textContent = plan.days.some((d) => d.reads_api)
      ? `Confirm: ${plan.cost_line}` : `Confirm: run ${plan.task} ${plan.start}..${plan.end} (no API cost)`;
    $('plan').hidden = false;
  } catch (error) { fail(error); }
});
$('confirm').addEventListener('click', async () => {
  $('error').textContent = '';
  try {
    const {id} = await api('POST', '/api/runs', {...asked, dry_run: false});
    $('plan').hidden = true;
    follow(id);
  } catch (error) { fail(error); }
});
$('cancel').addEventListener('click', async () => {
  try { await api('POST', `/api/runs/${following}/cancel`); } catch (error) { fail(error); }
});
async function follow(id) {
  following = id;
  $('run').hidden = false;
  const run = await api('GET', `/api/runs/${id}`);
  if (following !== id) return;
  $('run-title').textContent = `${run.task} ${run.start}..${run.end} (${run.id})`;
  $('run-state').textContent = run.state;
  $('run').dataset.runState = run.state;
  $('run-progress').textContent = `${run.progress.done}/${run.progress.tasks} tasks done`;
  $('run-luigid').href = run.luigid;
  $('run-summary').textContent = run.summary;
  $('run-log').textContent = run.log;
  $('run-log').scrollTop = $('run-log').scrollHeight;
  const active = run.state === 'queued' || run.state === 'running';
  $('cancel').hidden = !active;
  if (active) setTimeout(() => follow(id).catch(fail), 1000);
  else await redraw();
}
function bindRuns() {
  for (const link of document.querySelectorAll('#runs a.show')) {
    link.addEventListener('click', (event) => { event.preventDefault(); follow(link.dataset.run).catch(fail); });
  }
}
bindRuns();
window.pageReady = true;
"""
