"""Backfills on a real SeaweedFS: what deciding completeness costs, and what a second worker buys.

1. Completeness of N stored days (default 100, 1,000 and 3,000; 1% missing): the S3 requests and the
   time of CuratedTweets.bulk_complete (what RangeDaily calls), counted with a hook on boto3's
   event system. Anchor: one request per day (HeadObject of every day's record) would be N requests.
2. Ten missing days of the sandbox's synthetic #FlixBus (--volume tweets a day) through luigid with
   --workers 1 and --workers 2: wall time of each and the speedup. Fetches are serialised by the
   x_api resource; curation runs on every free worker.

    python benchmarks/backfill.py [--sizes 100,1000,3000] [--volume 20000] [--skip-workers]
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
S3_PORT, PORT_BASE, API_PORT, LUIGID_PORT = 18433, 19433, 18701, 18083  # and the gRPC ports, +10000
BUCKET = "flixluigi-bench"
KEY = "flixluigi-bench-key-0123456789abcdef0123456789"


def count_requests(client, counter: Counter) -> None:
    """The boto3 client reports each S3 call it makes into `counter`."""
    client.meta.events.register("before-call.s3", lambda event_name, **kwargs: counter.update([event_name.rsplit(".", 1)[-1]]))


def configure(prefix: str) -> None:
    cfg = luigi.configuration.get_config()
    settings = {"s3": {"endpoint_url": f"http://127.0.0.1:{S3_PORT}", "region_name": "us-east-1"},
                "storage": {"bucket": BUCKET, "raw_prefix": f"{prefix}/raw", "curated_prefix": f"{prefix}/curated",
                            "records_prefix": f"{prefix}/records"}}
    for section, values in settings.items():
        if not cfg.has_section(section):
            cfg.add_section(section)
        for key, value in values.items():
            cfg.set(section, key, value)


def completeness(n_days: int) -> None:
    """Stores n_days days (pointer, fetch object, record each; 1% missing) and times bulk_complete."""
    from flixluigi import CuratedTweets
    from flixluigi.store.layout import new_fetch_id
    from flixluigi.store.s3 import Storage
    from flixluigi.store.state import Build, layout
    from flixluigi.work import pseudonymizer, sharing

    configure(f"completeness-{n_days}-{int(time.time())}")
    store, where, key_id = Storage.from_config(), layout(), pseudonymizer().key_id
    days = [date(2010, 1, 1) + timedelta(days=i) for i in range(n_days)]
    missing = set(days[:: 100][: max(1, n_days // 100)])
    started = time.perf_counter()
    for day in days:
        if day in missing:
            continue
        fetch_id = new_fetch_id()
        store.put_bytes(where.fetch_key(day, fetch_id), b"")
        store.put_bytes(where.pointer_key(day, fetch_id), b"{}")
        store.put_bytes(where.record_key(day, Build(fetch_id, key_id, 2, sharing()).id), b"{}")
    stored = time.perf_counter() - started
    requests: Counter = Counter()
    count_requests(store.s3, requests)
    started = time.perf_counter()
    complete = CuratedTweets.bulk_complete(days)
    seconds = time.perf_counter() - started
    assert set(days) - set(complete) == missing, "bulk_complete must find exactly the missing days"
    print(f"{n_days:>5} days ({len(missing)} missing; stored in {stored:.0f}s): bulk_complete {seconds * 1000:.0f} ms, "
          f"{sum(requests.values())} S3 requests {dict(requests)}; anchor: {n_days} requests, one a day")


def service(script: str, action: str, env: dict) -> None:
    subprocess.run([str(ROOT / "scripts" / script), action], env=env, check=True, capture_output=True)


def workers(volume: int, tmp: Path) -> None:
    """Ten missing days through luigid with one and with two workers."""
    env = {**os.environ, "SANDBOX_PORT": str(API_PORT), "SANDBOX_DIR": str(tmp / "sandbox"), "LUIGID_PORT": str(LUIGID_PORT),
           "LUIGID_DIR": str(tmp / "luigid"), "X_BEARER_TOKEN": "bench-token", "SANDBOX_BEARER_TOKEN": "bench-token",
           "FLIXLUIGI_HMAC_KEY": KEY}
    # The API's 1 request/s rule scaled down 100 times (sandbox and client alike): the figure is about
    # curation running side by side, not about waiting for the API.
    subprocess.run([str(ROOT / "scripts" / "sandbox.sh"), "start", "--volume", str(volume), "--time-scale", "0.01"], env=env,
                   check=True, capture_output=True)
    service("luigid.sh", "start", env)
    try:
        timings = {}
        for count in (1, 2):
            prefix = f"workers-{count}-{int(time.time())}"
            cfg = tmp / f"luigi-{count}.cfg"
            cfg.write_text(f"[s3]\nendpoint_url = http://127.0.0.1:{S3_PORT}\nregion_name = us-east-1\n"
                           f"[storage]\nbucket = {BUCKET}\nraw_prefix = {prefix}/raw\ncurated_prefix = {prefix}/curated\n"
                           f"records_prefix = {prefix}/records\n[xapi]\nbase_url = http://127.0.0.1:{API_PORT}\nmin_interval_all = 0.01\n")
            started = time.perf_counter()
            subprocess.run([str(ROOT / ".venv" / "bin" / "luigi"), "--module", "flixluigi", "RangeDaily", "--of", "CuratedTweets",
                            "--start", "2022-09-01", "--stop", "2022-09-11", "--workers", str(count),
                            "--scheduler-host", "127.0.0.1", "--scheduler-port", str(LUIGID_PORT)],
                           env={**env, "LUIGI_CONFIG_PATH": str(cfg)}, cwd=tmp, check=True, capture_output=True)
            timings[count] = time.perf_counter() - started
            print(f"10 missing days of ~{volume} tweets, --workers {count} through luigid: {timings[count]:.1f}s")
        print(f"speedup with 2 workers: {timings[1] / timings[2]:.2f}x (anchor: 1.0x; fetches serialised by the x_api "
              "resource, curation in parallel)")
    finally:
        service("luigid.sh", "stop", env)
        service("sandbox.sh", "stop", env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000,3000", help="numbers of days for the completeness check")
    parser.add_argument("--volume", type=int, default=20000, help="synthetic tweets a day for the workers run")
    parser.add_argument("--skip-workers", action="store_true", help="only the completeness check")
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "flixluigi-bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "flixluigi-bench-secret")
    os.environ.setdefault("FLIXLUIGI_HMAC_KEY", KEY)
    tmp = Path(tempfile.mkdtemp(prefix="flixluigi-backfill-"))
    env = {**os.environ, "SEAWEED_DIR": str(tmp / "seaweed"), "SEAWEED_S3_PORT": str(S3_PORT),
           "SEAWEED_PORT_BASE": str(PORT_BASE), "S3_BUCKET": BUCKET}
    service("seaweedfs.sh", "start", env)
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            completeness(size)
        if not args.skip_workers:
            workers(args.volume, tmp)
    finally:
        service("seaweedfs.sh", "stop", env)


if __name__ == "__main__":
    main()
