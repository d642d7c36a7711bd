"""Fetch one day from the sandbox under each full-archive limit, as a day task does it.

A run is the API check (a counts request), every search page, and the reconciliation (a counts
request). Two limits, time-scaled so the run takes seconds:
  1/s     the 1 request/s rule binds (the 15-minute window of 300 does not);
  window  a 15-minute window of --window-limit requests binds (the 1/s rule applies too).
Prints wall time of the search pages, the ideal the limits allow, utilisation (ideal / wall),
the 429s met, and posts billed per stored post (posts the sandbox bills, with the same-post-
same-UTC-day rule, over distinct posts fetched). Then the 1/s run again with 10% mixed faults,
checked for lost or duplicated posts.
Targets: utilisation >= 0.95, zero 429s, posts billed per stored post <= 1.01.

The ideal counts the interval before the first page too: another process may just have used the app.

    python benchmarks/fetch.py [--volume 10000] [--scale 0.5] [--window-limit 25] [--window-scale 0.02]
"""

from __future__ import annotations

import argparse
import logging
import time
from datetime import date

from devkit import sandbox
from flixluigi.xapi.client import XClient, day_window, search_path

DAY = date(2022, 9, 12)
QUERY = "#FlixBus"
FULL_WINDOW = 900.0  # seconds of the real full-archive window, before scaling
ALL = search_path("all")


def run_day(server: sandbox.SandboxServer, interval: float, timeout: float = 10) -> tuple[list[str], XClient, float]:
    """Check, fetch and reconcile one day; the wall time covers the search pages."""
    client = XClient(f"http://127.0.0.1:{server.server_address[1]}", sandbox.DEFAULT_TOKEN, timeout=timeout,
                     backoff_factor=0.05, min_interval={ALL: interval})
    window = day_window(DAY, "all")
    client.check(QUERY)
    started = time.monotonic()
    ids = [t["id"] for page in client.search(QUERY, window, max_results=100) for t in page.body.get("data", ())]
    wall = time.monotonic() - started
    client.count(QUERY, window)
    return ids, client, wall


def report(name: str, server: sandbox.SandboxServer, ids: list[str], client: XClient, wall: float, ideal: float) -> None:
    print(f"{name}: {len(set(ids))} posts in {client.stats.pages} pages; requests {dict(client.stats.requests)}")
    print(f"  wall {wall:.2f}s  ideal {ideal:.2f}s  utilisation {ideal / wall:.3f}  429s {server.statuses[429]}  "
          f"posts billed per stored post {server.billing.posts_billed / max(1, len(set(ids))):.3f}  "
          f"counts requests {server.billing.count_requests}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--volume", type=int, default=10000, help="posts per day, before the generator's +-20%%")
    parser.add_argument("--scale", type=float, default=0.5, help="time scale of the 1/s run (1 s -> this)")
    parser.add_argument("--window-limit", type=int, default=25, help="requests per 15-minute window in the window run")
    parser.add_argument("--window-scale", type=float, default=0.02, help="time scale of the window run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    server = sandbox.start(volume=args.volume, time_scale=args.scale)
    ids, client, wall = run_day(server, args.scale)
    server.shutdown()
    report(f"1/s rule (1 s -> {args.scale:g} s)", server, ids, client, wall, client.stats.requests[ALL] * args.scale)

    server = sandbox.start(volume=args.volume, time_scale=args.window_scale, rate_limit=args.window_limit)
    window_ids, window_client, window_wall = run_day(server, args.window_scale)
    server.shutdown()
    scaled = FULL_WINDOW * args.window_scale
    pages = window_client.stats.requests[ALL]
    # Whole windows waited out, then the last window's pages at the 1/s rule.
    ideal = (pages - 1) // args.window_limit * scaled + (pages - 1) % args.window_limit * args.window_scale
    report(f"{args.window_limit} per 15-min window (900 s -> {scaled:g} s)", server, window_ids, window_client,
           window_wall, ideal)

    faulty = sandbox.start(volume=args.volume, time_scale=args.scale,
                           faults=sandbox.Faults(rate=0.10, seed=11, slow_seconds=1.5))
    faulty_ids, faulty_client, faulty_wall = run_day(faulty, args.scale, timeout=1.0)
    faulty.shutdown()
    lost = len(set(ids) - set(faulty_ids))
    duplicated = len(faulty_ids) - len(set(faulty_ids))
    print(f"10% mixed faults: {dict(faulty.faults_injected)}; retries {faulty_client.stats.retries}, "
          f"wall {faulty_wall:.2f}s, posts billed per stored post "
          f"{faulty.billing.posts_billed / max(1, len(set(faulty_ids))):.3f}")
    print(f"  lost {lost}  duplicated {duplicated}  identical to fault-free: {faulty_ids == ids}")


if __name__ == "__main__":
    main()
