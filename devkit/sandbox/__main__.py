"""`python -m devkit.sandbox --port 8700`: the X API sandbox as a process of its own."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from devkit.sandbox import DEFAULT_TOKEN, FAULTS, PAGE_FAULTS, TRANSIENT_FAULTS, ComplianceConfig, Faults, start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8700, help="port to bind; 0 picks a free one (default 8700)")
    parser.add_argument("--token-env", default="SANDBOX_BEARER_TOKEN",
                        help=f"environment variable holding the accepted bearer token (default: {DEFAULT_TOKEN!r} if unset)")
    parser.add_argument("--volume", type=int, default=300, help="synthetic tweets per day, +-20%% (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic corpus (default 0)")
    parser.add_argument("--replay", action="append", default=[], metavar="JSONL",
                        help="serve recorded twarc JSONL pages instead of synthetic tweets (repeatable)")
    parser.add_argument("--rate-limit", type=int, default=300, help="requests per window and endpoint (default 300)")
    parser.add_argument("--rate-window", type=float, default=900.0, help="rate-limit window in seconds (default 900)")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests that meet a fault (0..1)")
    parser.add_argument("--faults", default=",".join(TRANSIENT_FAULTS),
                        help=f"fault kinds to draw from, of {','.join(FAULTS)} (default the transient ones)")
    parser.add_argument("--fault-seed", type=int, default=0, help="seed of the fault draws")
    parser.add_argument("--slow-seconds", type=float, default=2.0, help="delay of a 'slow' fault; a 'trickle' sends a byte per this")
    parser.add_argument("--page-fault", default="", choices=["", *PAGE_FAULTS], help="every faulted answer is wrong this way")
    parser.add_argument("--fault-path", default="", help="faults apply only to paths holding this (e.g. /search/)")
    parser.add_argument("--fault-after", type=int, default=0, help="faults apply only after this many such requests")
    parser.add_argument("--usage-capped", action="store_true", help="answer every request with the usage-cap 429")
    parser.add_argument("--compliance-rate", type=float, default=0.0,
                        help="share of ids the compliance jobs report deleted/protected/suspended/scrub_geo (0..0.5, seeded by --seed)")
    parser.add_argument("--usage-cap", type=int, default=None, help="billed posts after which the usage-cap 429 answers")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="multiplies the 1 request/s interval and the rate window (default 1 = real time)")
    parser.add_argument("--legacy", action="store_true",
                        help="the API as before 2023: no per-second rule, long posts, edits or retweet filter")
    args = parser.parse_args(argv)
    try:
        faults = Faults(rate=args.fault_rate, kinds=tuple(k for k in args.faults.split(",") if k), seed=args.fault_seed,
                        slow_seconds=args.slow_seconds, usage_capped=args.usage_capped, page=args.page_fault,
                        path=args.fault_path, after=args.fault_after)
        server = start(args.host, args.port, token=os.environ.get(args.token_env) or DEFAULT_TOKEN, volume=args.volume,
                       seed=args.seed, replay=tuple(args.replay), rate_limit=args.rate_limit,
                       rate_window=args.rate_window, faults=faults, legacy=args.legacy, time_scale=args.time_scale,
                       usage_cap=args.usage_cap, compliance=ComplianceConfig(rate=args.compliance_rate, seed=args.seed))
    except (OSError, ValueError) as exc:
        print(f"sandbox: cannot start: {exc}", file=sys.stderr)
        return 2
    host, port = server.server_address[:2]
    print(f"X API sandbox listening on http://{host}:{port}", flush=True)
    signal.sigwait({signal.SIGINT, signal.SIGTERM})
    server.shutdown()
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.exit(main())
