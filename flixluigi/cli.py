"""`flixluigi` console script: operator views of what is stored (the jobs run through `luigi`)."""

from __future__ import annotations

import argparse
import sys
from datetime import date, timedelta

import luigi.configuration
import pyarrow.parquet as pq

from flixluigi.storage import CURATED_FILE, RAW_FILE, Storage, StorageError


def parse_day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date; use YYYY-MM-DD, e.g. 2022-09-12") from None


def summary(day: date, samples: int) -> str:
    """Where a day's objects are and what the curated day holds, with a few pseudonymised rows."""
    store = Storage.from_config()
    raw_manifest = store.get_json(store.manifest_key(store.raw_prefix, day))
    curated_manifest = store.get_json(store.manifest_key(store.curated_prefix, day))
    table = pq.read_table(store.read_buffer(store.curated_key(day, CURATED_FILE)))
    lines = [
        f"raw:     {store.url(store.raw_key(day, RAW_FILE))}  ({raw_manifest['pages']} pages, {raw_manifest['tweets']} tweets)",
        f"curated: {store.url(store.curated_key(day, CURATED_FILE))}  ({curated_manifest['rows']} rows, "
        f"key {curated_manifest['pseudonym_key_id']})",
        f"columns: {', '.join(table.column_names)}",
    ]
    for row in table.slice(0, samples).select(["tweet_id", "created_at", "lang", "author_id", "is_retweet", "text"]).to_pylist():
        lines.append(f"  {row['tweet_id']} {row['created_at']:%H:%M:%S} {row['lang']} {row['author_id']} "
                     f"rt={row['is_retweet']!s:5} {row['text'][:60]!r}")
    return "\n".join(lines)


def _part(store: Storage, prefix: str, day: date, state: str | None, count: str) -> tuple[str, dict]:
    """One half of a status line: state, count, and the manifest (empty when there is none)."""
    if state == "complete":
        manifest = store.get_json(store.manifest_key(prefix, day))
        return f"ok {manifest.get(count, '?')} {count}", manifest
    if state == "failed":
        failure = store.get_json(store.failure_key(prefix, day))
        return f"FAILED at {failure.get('failed_at', '?')[:19]}Z: {failure.get('error', '?')}", {}
    return "missing", {}


def status(start: date, end: date) -> list[str]:
    """One line per day from one listing per prefix plus the manifests of the days shown."""
    if end < start:
        raise ValueError(f"--end {end} is before --start {start}; give the range oldest day first")
    store = Storage.from_config()
    raw_days, curated_days = store.day_states(store.raw_prefix), store.day_states(store.curated_prefix)
    lines = []
    for offset in range((end - start).days + 1):
        day = start + timedelta(days=offset)
        raw, raw_manifest = _part(store, store.raw_prefix, day, raw_days.get(day), "tweets")
        curated, curated_manifest = _part(store, store.curated_prefix, day, curated_days.get(day), "rows")
        produced = curated_manifest.get("produced_at") or raw_manifest.get("produced_at")
        warnings = "; ".join(raw_manifest.get("warnings", ()))
        lines.append(f"{day}  raw: {raw:<16}  curated: {curated:<14}"
                     + (f"  produced {produced[:19]}Z" if produced else "") + (f"  WARNING: {warnings}" if warnings else ""))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flixluigi", description=__doc__)
    parser.add_argument("--config", help="luigi.cfg to read besides the default locations")
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("summary", help="where a day's objects are and a few curated rows")
    show.add_argument("--date", type=parse_day, required=True, help="UTC day, YYYY-MM-DD")
    show.add_argument("--samples", type=int, default=5, help="curated rows to show (default 5)")
    days = sub.add_parser("status", help="one line per day: raw and curated present, missing or failed")
    days.add_argument("--start", type=parse_day, required=True, help="first UTC day, YYYY-MM-DD")
    days.add_argument("--end", type=parse_day, help="last UTC day, inclusive (default: --start)")
    args = parser.parse_args(argv)
    if args.config:
        luigi.configuration.add_config_path(args.config)
    try:
        if args.command == "summary":
            print(summary(args.date, args.samples))
        else:
            print("\n".join(status(args.start, args.end or args.start)))
    except (StorageError, ValueError) as exc:
        print(f"flixluigi: {exc}", file=sys.stderr)
        return 1
    return 0
