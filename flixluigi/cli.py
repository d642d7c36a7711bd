"""`flixluigi` console script: operator views of what is stored (the jobs run through `luigi`)."""

from __future__ import annotations

import argparse
import sys
from datetime import date

import luigi.configuration
import pyarrow.parquet as pq

from flixluigi.storage import CURATED_FILE, MANIFEST, RAW_FILE, Storage, StorageError


def parse_day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date; use YYYY-MM-DD, e.g. 2022-09-12") from None


def summary(day: date, samples: int) -> str:
    """Where a day's objects are and what the curated day holds, with a few pseudonymised rows."""
    store = Storage.from_config()
    raw_manifest = store.get_json(store.raw_key(day, MANIFEST))
    curated_manifest = store.get_json(store.curated_key(day, MANIFEST))
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flixluigi", description=__doc__)
    parser.add_argument("--config", help="luigi.cfg to read besides the default locations")
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("summary", help="where a day's objects are and a few curated rows")
    show.add_argument("--date", type=parse_day, required=True, help="UTC day, YYYY-MM-DD")
    show.add_argument("--samples", type=int, default=5, help="curated rows to show (default 5)")
    args = parser.parse_args(argv)
    if args.config:
        luigi.configuration.add_config_path(args.config)
    try:
        print(summary(args.date, args.samples))
    except StorageError as exc:
        print(f"flixluigi: {exc}", file=sys.stderr)
        return 1
    return 0
