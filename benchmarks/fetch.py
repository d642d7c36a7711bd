"""Fetch one 20,000-tweet day from the sandbox with a binding rate limit.

Prints pages, wall time, the ideal time the limit allows, utilisation (ideal / actual) and the
429s met; then the same day with 10% mixed faults, checked for lost or duplicated tweets.
Target: utilisation >= 0.9 with zero 429s, and zero lost or duplicated tweets with faults on.

    python benchmarks/fetch.py [--volume 20000] [--limit 20] [--window 1]
"""

from __future__ import annotations

import argparse
import logging
import time
from datetime import date

from flixluigi import sandbox
from flixluigi.sandbox.generator import generate_day
from flixluigi.xapi import XClient, day_window

DAY = date(2022, 9, 12)


def fetch(server: sandbox.SandboxServer, per_page: int, timeout: float = 10) -> tuple[list[str], XClient, float]:
    client = XClient(f"http://127.0.0.1:{server.server_address[1]}", sandbox.DEFAULT_TOKEN, timeout=timeout,
                     backoff_factor=0.05)
    started = time.monotonic()
    ids = [t["id"] for page in client.search("#FlixBus", day_window(DAY, "all"), max_results=per_page)
           for t in page.body.get("data", ())]
    return ids, client, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--volume", type=int, default=22000, help="tweets per day, before the generator's +-20%%")
    parser.add_argument("--limit", type=int, default=50, help="requests per rate-limit window")
    parser.add_argument("--window", type=float, default=15.0, help="rate-limit window, seconds")
    parser.add_argument("--per-page", type=int, default=100, help="max_results")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    # The volume is scaled so the generated day holds ~--volume tweets despite the +-20% jitter.
    generated = len(generate_day(DAY, args.volume, 0).tweets)

    server = sandbox.start(volume=args.volume, rate_limit=args.limit, rate_window=args.window)
    ids, client, wall = fetch(server, args.per_page)
    server.shutdown()
    requests_made = client.stats.pages
    ideal = (requests_made - 1) // args.limit * args.window
    print(f"rate-limited fetch: {generated} tweets generated, {len(ids)} fetched, {client.stats.pages} pages, "
          f"limit {args.limit}/{args.window:g}s")
    print(f"  wall {wall:.2f}s  ideal {ideal:.2f}s  utilisation {ideal / wall:.3f}  "
          f"429s {server.statuses[429]}  rate-limit waits {client.stats.rate_limit_waits}")

    faulty = sandbox.start(volume=args.volume, rate_limit=args.limit, rate_window=args.window,
                           faults=sandbox.Faults(rate=0.10, seed=11, slow_seconds=1.5))
    faulty_ids, faulty_client, faulty_wall = fetch(faulty, args.per_page, timeout=1.0)
    faulty.shutdown()
    lost = len(set(ids) - set(faulty_ids))
    duplicated = len(faulty_ids) - len(set(faulty_ids))
    print(f"10% mixed faults: {dict(faulty.faults_injected)}; retries {faulty_client.stats.retries}, "
          f"wall {faulty_wall:.2f}s")
    print(f"  lost {lost}  duplicated {duplicated}  identical to fault-free: {faulty_ids == ids}")


if __name__ == "__main__":
    main()
