"""Peak RSS of CuratedTweets for a 1,000,000-tweet day through the real task: S3 in, Delta commit out.

A raw day of the sandbox's generated pages (benchmarks/curate.py; --tweets of them) is written
into a SeaweedFS of the benchmark's own as RawTweets writes it (zstd, then its pointer), and
measured three ways, each a process of its own under /usr/bin/time:

- curation alone: the raw day streamed from S3 through `Curator.batches` and `check_batch`, the
  batches dropped (what the task holds besides the Delta writer);
- the task: `luigi --module flixluigi CuratedTweets --date D --local-scheduler` (Preflight, the
  curation and the table commit, its record);
- Reprocess of the same day: the day replaced in an existing table (a predicate overwrite).

The difference between the task and curation alone is the Delta writer's (and the task's) share.
Target (issue 14): peak RSS <= 300 MB for a 1,000,000-tweet day.

    python benchmarks/memory.py [--tweets 1000000] [--dir /tmp/flixluigi-memory]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from stored import configure, luigi, seaweedfs, since, since_arg, store_day

S3_PORT, PORT_BASE = 18533, 19533  # and the gRPC ports, +10000: clear of the tests' and other benchmarks'
DAY = date(2022, 9, 12)
TARGET_MB = 300


def curate_alone(day: date) -> None:
    """The child of the first measurement: curate the stored day, keep nothing."""
    from flixluigi.curation.curator import Curator
    from flixluigi.curation.gate import check_batch
    from flixluigi.store.rawio import open_raw
    from flixluigi.store.s3 import Storage
    from flixluigi.store.state import layout, raw_day
    from flixluigi.work import bounded_memory, pseudonymizer

    bounded_memory()
    store = Storage.from_config()
    stored = raw_day(store, layout(), day)
    curator = Curator(day, pseudonymizer())
    with open_raw(store, stored.fetches[stored.current]["Key"]) as raw:
        for batch in curator.batches(raw):
            check_batch(batch, curator.stats)
    print(f"rows {curator.stats.rows}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tweets", type=int, default=1_000_000, help="tweets in the generated day")
    parser.add_argument("--dir", default="", help="working directory (default: a new temporary one)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return curate_alone(date.fromisoformat(args.child))
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="flixluigi-memory-"))
    workdir.mkdir(parents=True, exist_ok=True)
    with seaweedfs(workdir, S3_PORT, PORT_BASE) as endpoint:
        cfg = configure(workdir, endpoint, f"memory-{int(time.time())}")
        from curate import day_lines, sandbox_pages

        started = time.perf_counter()
        pointer = store_day(DAY, day_lines(sandbox_pages(DAY), args.tweets), args.tweets)
        print(f"stored a raw day of {args.tweets:,} tweets ({pointer['size'] / 1e6:.0f} MB zstd) in "
              f"{time.perf_counter() - started:.0f}s")
        alone = subprocess.run(["/usr/bin/time", "-v", sys.executable, __file__, "--child", DAY.isoformat()],
                               capture_output=True, text=True, check=True)
        rss = float(alone.stderr.split("Maximum resident set size (kbytes): ")[1].split()[0]) / 1024
        print(f"  curation alone (S3 in, batches dropped): peak RSS {rss:.0f} MB")
        runs = {"CuratedTweets, the table's first commit": lambda: ["CuratedTweets", "--date", DAY.isoformat()],
                "Reprocess of the day, replacing it in the table":
                    lambda: ["Reprocess", "--start", DAY.isoformat(), "--since", since_arg(since())]}
        for label, task_args in runs.items():
            task = luigi([*task_args(), "--local-scheduler"], cfg, workdir)
            print(f"  {label}: {task['seconds']:.1f}s wall, {task['cpu_seconds']:.1f}s CPU, peak RSS "
                  f"{task['peak_rss_mb']:.0f} MB (target <= {TARGET_MB} MB; beyond curation alone: "
                  f"{task['peak_rss_mb'] - rss:.0f} MB)")
    return None


if __name__ == "__main__":
    main()
