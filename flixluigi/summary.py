"""What one `luigi` run did, from the outcomes its tasks recorded: one text line and one JSON line. Pure.

Outcomes, per day: `fetched` (a new raw fetch: posts read, cost), `curated` and `rebuilt` (a
table commit: rows), `complete` (nothing to do), `failed`; and `compliance` (what a compliance
run removed). A day counts as `complete` only when nothing else happened to it in the run.
"""

from __future__ import annotations

from datetime import date

from flixluigi.dates import compact

OUTCOMES = ("fetched", "curated", "rebuilt", "complete", "failed")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def days_by_outcome(outcomes: list[dict]) -> dict[str, list[date]]:
    """Outcome -> its days (each once); days only `complete` when nothing else happened to them."""
    found: dict[str, set[date]] = {name: set() for name in OUTCOMES}
    for entry in outcomes:
        if entry.get("day") and entry["outcome"] in found:
            found[entry["outcome"]].add(date.fromisoformat(entry["day"]))
    busy = set().union(*(found[name] for name in OUTCOMES if name != "complete"))
    found["complete"] -= busy
    return {name: sorted(days) for name, days in found.items()}


def summarise(run_id: str, outcomes: list[dict], failures: list[str]) -> dict:
    """The run's summary as data: the JSON line, and what the text line says."""
    days = days_by_outcome(outcomes)
    removed: dict[str, int] = {}
    for entry in outcomes:
        for kind, count in entry.get("removed", {}).items():
            removed[kind] = removed.get(kind, 0) + count
    return {
        "flixluigi_run": run_id,
        "days": {name: [day.isoformat() for day in found] for name, found in days.items()},
        "posts_read": sum(entry.get("posts_read", 0) for entry in outcomes),
        "cost_usd": round(sum(entry.get("cost", 0.0) for entry in outcomes), 4),
        "rows_published": sum(entry.get("rows", 0) for entry in outcomes),
        "compliance_removed": removed,
        "compliance_days": sorted({day for entry in outcomes if entry["outcome"] == "compliance" for day in entry.get("days", ())}),
        "failures": failures,
    }


def text(summary: dict) -> str:
    """One line: per outcome the days as compact ranges, then posts, cost, rows and removals."""
    parts = [f"{'already complete' if name == 'complete' else name} {_plural(len(found), 'day')} ({compact([date.fromisoformat(d) for d in found])})"
             for name, found in summary["days"].items() if found]
    if summary["compliance_days"]:
        removed = ", ".join(f"{count} {kind}" for kind, count in sorted(summary["compliance_removed"].items())) or "nothing"
        parts.append(f"compliance checked {_plural(len(summary['compliance_days']), 'day')}, removed {removed}")
    totals = f"{_plural(summary['posts_read'], 'post')} read, ~${summary['cost_usd']:.2f}, " \
             f"{_plural(summary['rows_published'], 'row')} published"
    return f"run summary: {'; '.join(parts) or 'no day was asked for'}; {totals}"
