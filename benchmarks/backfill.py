"""Completeness check of a 1,000-day range with 10 days missing, on a real SeaweedFS.

Compares CuratedTweets.bulk_complete (what RangeDaily calls: one listing) with one exists()
per day on a shared client, counting S3 requests with a hook on boto3's event system.
Target: <= 3 list requests and at least 20x faster than per-day checks.

    python benchmarks/backfill.py [--days 1000] [--missing 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import luigi.configuration

ROOT = Path(__file__).resolve().parent.parent
S3_PORT, PORT_BASE = 18433, 19433  # and their gRPC ports, +10000
BUCKET = "flixluigi-bench"


def count_requests(client, counter: Counter) -> None:
    """The boto3 client reports each S3 call it makes into `counter`."""
    client.meta.events.register("before-call.s3", lambda event_name, **kwargs: counter.update([event_name.rsplit(".", 1)[-1]]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=1000)
    parser.add_argument("--missing", type=int, default=10)
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "flixluigi-bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "flixluigi-bench-secret")
    workdir = tempfile.mkdtemp(prefix="flixluigi-backfill-")
    env = {**os.environ, "SEAWEED_DIR": workdir, "SEAWEED_S3_PORT": str(S3_PORT), "SEAWEED_PORT_BASE": str(PORT_BASE),
           "S3_BUCKET": BUCKET}
    seaweed = str(ROOT / "scripts" / "seaweedfs.sh")
    subprocess.run([seaweed, "start"], env=env, check=True, capture_output=True)
    try:
        run(args.days, args.missing)
    finally:
        subprocess.run([seaweed, "stop"], env=env, check=True, capture_output=True)


def run(n_days: int, n_missing: int) -> None:
    from flixluigi import CuratedTweets
    from flixluigi.storage import Storage

    cfg = luigi.configuration.get_config()
    for section, values in {"s3": {"endpoint_url": f"http://127.0.0.1:{S3_PORT}", "region_name": "us-east-1"},
                            "storage": {"bucket": BUCKET}}.items():
        if not cfg.has_section(section):
            cfg.add_section(section)
        for key, value in values.items():
            cfg.set(section, key, value)
    store = Storage.from_config()
    days = [date(2020, 1, 1) + timedelta(days=i) for i in range(n_days)]
    missing = set(days[:: n_days // n_missing][:n_missing])
    started = time.perf_counter()
    for day in days:
        if day not in missing:
            store.s3.put_object(Bucket=BUCKET, Key=store.curated_key(day), Body=b"PAR1")
            store.s3.put_object(Bucket=BUCKET, Key=store.manifest_key(store.curated_prefix, day), Body=b"{}")
    print(f"stored {n_days - len(missing)} complete days of {n_days} ({2 * (n_days - len(missing))} objects) "
          f"in {time.perf_counter() - started:.1f}s")

    # Both sides use the process's shared client (Storage.from_config caches it).
    requests: Counter = Counter()
    count_requests(Storage.from_config().s3, requests)
    started = time.perf_counter()
    complete = CuratedTweets.bulk_complete(days)
    bulk_seconds = time.perf_counter() - started
    assert set(days) - set(complete) == missing
    bulk_requests = dict(requests)

    requests.clear()
    shared = Storage.from_config()
    started = time.perf_counter()
    per_day = [d for d in days if shared.exists(shared.manifest_key(shared.curated_prefix, d))]
    single_seconds = time.perf_counter() - started
    assert per_day == complete
    single_requests = dict(requests)

    print(f"bulk_complete: {bulk_seconds * 1000:.0f} ms, S3 requests {bulk_requests}")
    print(f"exists() per day: {single_seconds * 1000:.0f} ms, S3 requests {single_requests}")
    print(f"speed-up {single_seconds / bulk_seconds:.1f}x; missing days found: {len(missing)}")


if __name__ == "__main__":
    main()
