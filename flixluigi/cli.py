"""`flixluigi` console script: views and maintenance of what is stored (the jobs run through `luigi`)."""

from __future__ import annotations

import argparse
import gc
import sys
from datetime import date
from pathlib import Path

import luigi.configuration

from flixluigi import config
from flixluigi.errors import FlixluigiError, first_line
from flixluigi.ops import actions, metrics, plan, s3check, status
from flixluigi.store import rejected
from flixluigi.store.lake import CuratedTable
from flixluigi.store.s3 import Storage
from flixluigi.store.state import layout


def parse_day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date; use YYYY-MM-DD, e.g. 2022-09-12") from None


def summary(day: date, samples: int) -> str:
    """Where a day lives and what the curated day holds, with a few pseudonymised rows."""
    (day_status,) = status.status(day, day)
    table = CuratedTable.from_config()
    rows = table.day_rows(day)
    lines = [
        f"raw:     {day_status.pointer['object'] if day_status.pointer else 'missing'}"
        + (f"  ({day_status.pointer['pages']} pages, {day_status.pointer['tweets']} tweets)" if day_status.pointer else ""),
        f"curated: {table.uri} date={day}  ({day_status.curated}, {rows.num_rows} rows"
        + (f", key {day_status.record['pseudonym_key_id']}, build {day_status.record['build_id']})" if day_status.record else ")"),
        f"columns: {', '.join(rows.column_names)}",
    ]
    if rows.num_rows:
        for row in rows.slice(0, samples).select(["tweet_id", "created_at", "lang", "author_id", "text"]).to_pylist():
            lines.append(f"  {row['tweet_id']} {row['created_at']:%H:%M:%S} {row['lang']} {row['author_id']} "
                         f"{(row['text'] or '')[:60]!r}")
    return "\n".join(lines)


def _write_report(start: date, end: date, out: str) -> str:
    from flixluigi.ops.report import report_html  # plotly: only this command needs it

    Path(out).write_text(report_html(start, end), encoding="utf-8")
    return f"report of {start}..{end} written to {out}"


def _metrics(first_day: str | None, gateway: str | None) -> str:
    text = metrics.metrics_text(first_day=first_day)
    return metrics.push(text, gateway) if gateway else text.rstrip("\n")


def _console(args: argparse.Namespace) -> list[str]:
    from flixluigi.console.server import serve  # tornado: only this command needs the server

    serve(args.host, args.port, args.behind_proxy, args.config)
    return []


ERROR_EXIT = "1 on an error (one line on stderr that names it and the fix), 2 on bad arguments"
# What each command's exit code means: cron lines and monitors act on it.
EXIT_CODES = {
    "verify": "exit codes: 0 every day is whole and current, 1 a problem or a missing day (one line each) or an error, "
              "2 on bad arguments",
    "status": f"exit codes: 0 the days are listed (a failed day is shown, not an error), {ERROR_EXIT}; the HMAC key is "
              "needed to tell current days from stale ones",
}


def _exit_codes(name: str) -> str:
    return EXIT_CODES.get(name, f"exit codes: 0 done, {ERROR_EXIT}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flixluigi", description=__doc__, epilog=f"{_exit_codes('')}; verify also exits 1 when a day "
                                     "has a problem or is missing")
    parser.add_argument("--config", help="luigi.cfg to read besides the default locations")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_range(name: str, help: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help, epilog=_exit_codes(name))
        command.add_argument("--start", type=parse_day, required=True, help="first UTC day, YYYY-MM-DD")
        command.add_argument("--end", type=parse_day, help="last UTC day, inclusive (default: --start)")
        return command

    def with_day(name: str, help: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help, epilog=_exit_codes(name))
        command.add_argument("--date", type=parse_day, required=True, help="UTC day, YYYY-MM-DD")
        return command

    with_day("summary", "where a day lives and a few curated rows").add_argument(
        "--samples", type=int, default=5, help="curated rows to show (default 5)")
    with_range("status", "one line per day: raw and curated ok, stale, missing or failed")
    with_range("verify", "one line per problem in a range; exit 1 if any")
    with_range("estimate", "days, expected posts and cost of fetching a range (counts endpoint, no post read)")
    with_day("history", "every version of a day: when, from which raw fetch, key id, rows")
    with_day("restore", "make a version of one day current again (a new commit)").add_argument(
        "--version", type=int, required=True, help="table version, from `flixluigi history`")
    planned = with_range("plan", "dry run of a Backfill, Reprocess or Compliance: days, expected posts (stored counts "
                                 "only), cost, what would be rebuilt")
    planned.add_argument("task", choices=("Backfill", "Reprocess", "Compliance"))
    planned.add_argument("--refetch", action="store_true", help="Reprocess: fetch the raw days again from the API")
    with_range("report", "a self-contained HTML report of a range").add_argument(
        "--out", required=True, help="where to write the HTML file")
    for name, help in (("vacuum", "delete superseded table files and raw fetches past [storage] keep_versions_days"),
                       ("migrate", "convert a bucket written by flixluigi 0.1 to this layout")):
        sub.add_parser(name, help=help + " (a dry run unless --apply)", epilog=_exit_codes(name)).add_argument(
            "--apply", action="store_true", help="really do it")
    figures = sub.add_parser("metrics", help="the pipeline's figures in Prometheus's text format (totals and the latest day)")
    figures.add_argument("--first-day", help="first UTC day the pipeline should hold, YYYY-MM-DD (default: [metrics] first_day)")
    figures.add_argument("--push", metavar="URL", help="PUT them to this Pushgateway (job flixluigi) instead of printing them")
    check = sub.add_parser("s3check", help="whether the S3 server does what the pipeline relies on (run before the first run)")
    check.add_argument("--writers", type=int, default=s3check.WRITERS, help=f"concurrent put-if-absent writers (default {s3check.WRITERS})")
    check.add_argument("--rounds", type=int, default=s3check.ROUNDS, help=f"rounds of them, each on a new key (default {s3check.ROUNDS})")
    console = sub.add_parser("console", help="the web console: calendar of days, runs through luigid, JSON API")
    console.add_argument("--port", type=int, default=8090, help="port to listen on (default 8090)")
    console.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: loopback only; "
                                                             "anything else belongs behind a TLS reverse proxy)")
    console.add_argument("--behind-proxy", action="store_true", help="trust the proxy's X-Forwarded-For/-Proto headers "
                                                                     "(requester address, Secure cookies)")
    args = parser.parse_args(argv)
    if args.config and not Path(args.config).is_file():
        print(f"flixluigi: --config {args.config} does not exist; give the path of a luigi.cfg", file=sys.stderr)
        return 1
    if args.config:
        luigi.configuration.add_config_path(args.config)
    end = getattr(args, "end", None) or getattr(args, "start", None)
    commands = {
        "summary": lambda: [summary(args.date, args.samples)],
        "status": lambda: status.status_lines(args.start, end),
        "verify": lambda: status.verify(args.start, end) + rejected.notes(Storage.from_config(), layout(), args.start, end),
        "estimate": lambda: status.estimate(args.start, end),
        "history": lambda: status.history(args.date),
        "restore": lambda: [actions.restore(args.date, args.version)],
        "vacuum": lambda: actions.vacuum(args.apply),
        "migrate": lambda: actions.migrate(args.apply),
        "report": lambda: [_write_report(args.start, end, args.out)],
        "s3check": lambda: [s3check.s3check(args.writers, args.rounds)],
        "metrics": lambda: [_metrics(args.first_day, args.push)],
        "console": lambda: _console(args),
        "plan": lambda: plan.plan(args.task, args.start, end, args.refetch).lines(),
    }
    try:
        config.require_settings()  # every command, before any request: a misspelt key is refused, not ignored
        lines = commands[args.command]()
    except (FlixluigiError, OSError, ValueError, LookupError) as exc:
        print(f"flixluigi: {first_line(exc)}", file=sys.stderr)
        return 1
    finally:
        # The Arrow datasets deltalake handed out are freed now, while Arrow is alive: freed in the
        # interpreter's last teardown, their scanner threads can abort the process (exit 134,
        # "terminate called without an active exception"; seen once under load after `summary`).
        gc.collect()
    failed = args.command == "verify" and any(not line.startswith("note: ") for line in lines)
    if args.command == "verify" and not failed:
        lines.append(f"{args.start}..{end}: every day is whole and current")
    if lines:
        print("\n".join(lines))
    return 1 if failed else 0
