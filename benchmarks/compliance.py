"""A compliance run over 30 stored days of the demo's volume: time and requests.

Stores 30 days (the sandbox's synthetic #FlixBus, --volume posts a day) with CuratedTweets, then
runs Compliance over them against the sandbox's batch compliance endpoints, with --rate of the
ids reported deleted, protected, suspended or scrub_geo. Prints the wall time, the X API requests
(compliance jobs and their polls, uploads and downloads on the sandbox's pre-signed URLs) and the
S3 requests by operation, and how many days were rewritten. Anchor: a day is rewritten only when a
removed post or user is in it; the API cost is one job per 100,000 ids and kind, not one per day.

    python benchmarks/compliance.py [--days 30] [--volume 300] [--rate 0.002]
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

import luigi
import luigi.configuration

ROOT = Path(__file__).resolve().parent.parent
S3_PORT, PORT_BASE = 18633, 19633  # and their gRPC ports, +10000
BUCKET = "flixluigi-bench"


def configure(settings: dict[str, dict[str, str]]) -> None:
    cfg = luigi.configuration.get_config()
    for section, values in settings.items():
        if not cfg.has_section(section):
            cfg.add_section(section)
        for key, value in values.items():
            cfg.set(section, key, value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--volume", type=int, default=300)
    parser.add_argument("--rate", type=float, default=0.002, help="share of ids the compliance jobs report")
    args = parser.parse_args()
    token = "bench-token"
    os.environ.update({"AWS_ACCESS_KEY_ID": "flixluigi-bench", "AWS_SECRET_ACCESS_KEY": "flixluigi-bench-secret",
                       "X_BEARER_TOKEN": token, "FLIXLUIGI_HMAC_KEY": "flixluigi-bench-key-0123456789abcdef0123456789"})
    tmp = Path(tempfile.mkdtemp(prefix="flixluigi-compliance-"))
    env = {**os.environ, "SEAWEED_DIR": str(tmp), "SEAWEED_S3_PORT": str(S3_PORT), "SEAWEED_PORT_BASE": str(PORT_BASE),
           "S3_BUCKET": BUCKET}
    script = str(ROOT / "scripts" / "seaweedfs.sh")
    subprocess.run([script, "start"], env=env, check=True, capture_output=True)
    try:
        run(args.days, args.volume, args.rate, token)
    finally:
        subprocess.run([script, "stop"], env=env, check=True, capture_output=True)


def run(n_days: int, volume: int, rate: float, token: str) -> None:
    from devkit import sandbox
    from devkit.sandbox.compliance import ComplianceConfig
    from flixluigi import Compliance, CuratedTweets
    from flixluigi.store.s3 import Storage

    scale = 0.01
    server = sandbox.start(token=token, volume=volume, time_scale=scale,
                           compliance=ComplianceConfig(rate=rate, seed=7, polls_to_complete=2))
    prefix = f"compliance-{int(time.time())}"
    configure({"s3": {"endpoint_url": f"http://127.0.0.1:{S3_PORT}", "region_name": "us-east-1"},
               "storage": {"bucket": BUCKET, "raw_prefix": f"{prefix}/raw", "curated_prefix": f"{prefix}/curated",
                           "records_prefix": f"{prefix}/records", "min_file_age_hours": "0"},
               "xapi": {"base_url": f"http://127.0.0.1:{server.server_address[1]}", "min_interval_all": str(scale)},
               "compliance": {"poll_interval": "0.05", "purge_after_hours": "0"}})
    days = [date(2022, 9, 1) + timedelta(days=n) for n in range(n_days)]
    started = time.perf_counter()
    assert luigi.build([CuratedTweets(day) for day in days], local_scheduler=True)
    print(f"stored {n_days} days of ~{volume} posts in {time.perf_counter() - started:.1f}s")

    s3_requests: Counter = Counter()
    Storage.from_config().s3.meta.events.register(
        "before-call.s3", lambda event_name, **kwargs: s3_requests.update([event_name.rsplit(".", 1)[-1]]))
    served = server.requests_served
    started = time.perf_counter()
    result = luigi.build([Compliance(start=days[0], end=days[-1])], local_scheduler=True, detailed_summary=True)
    seconds = time.perf_counter() - started
    assert result.scheduling_succeeded, result.summary_text
    jobs = server.api.compliance.jobs
    state = Storage.from_config().get_json(f"{prefix}/records/compliance/state.json")
    rewritten = sum(1 for entry in state["days"].values() if "applied_at" in entry)
    removed = Counter()
    for entry in state["days"].values():
        for kind, counts in entry.get("removed", {}).items():
            removed.update({f"{kind} {reason}": n for reason, n in counts.items()})
    print(f"Compliance over {n_days} stored days: {seconds:.1f}s wall; {len(jobs)} compliance jobs; "
          f"{server.requests_served - served} X API requests (jobs, polls, uploads, downloads); "
          f"S3 requests (boto3, not counting the Delta writer's own) {sum(s3_requests.values())} {dict(s3_requests)}")
    print(f"days rewritten: {rewritten} of {n_days} (anchor: only days holding a reported id); removed {dict(removed)}")
    server.shutdown()


if __name__ == "__main__":
    main()
