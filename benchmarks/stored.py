"""Raw days stored in a benchmark's own SeaweedFS, and `luigi` run on them as a user runs it.

Shared by benchmarks/memory.py and benchmarks/reprocess.py. Days are written the way RawTweets
writes them (`flixluigi.store.rawio.compressed` into a multipart upload, then `flixluigi.store.state.point`),
from the sandbox's generated pages (benchmarks/curate.py). `luigi` always runs as a subprocess:
deltalake's runtime does not survive the fork of `--workers N` once a process has used it, and a
child of its own is the only way to read a task's peak RSS.
"""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "flixluigi-bench"
HMAC_KEY = "flixluigi-bench-key-0123456789abcdef0123456789"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "flixluigi-bench", "AWS_SECRET_ACCESS_KEY": "flixluigi-bench-secret",
               "FLIXLUIGI_HMAC_KEY": HMAC_KEY, "X_BEARER_TOKEN": "bench-token-never-sent"}


@contextmanager
def seaweedfs(workdir: Path, s3_port: int, port_base: int) -> Iterator[str]:
    """A SeaweedFS of the benchmark's own on loopback (its gRPC ports are each +10000); its endpoint."""
    env = {**os.environ, **CREDENTIALS, "SEAWEED_DIR": str(workdir / "seaweed"), "SEAWEED_S3_PORT": str(s3_port),
           "SEAWEED_PORT_BASE": str(port_base), "S3_BUCKET": BUCKET}
    script = str(ROOT / "scripts" / "seaweedfs.sh")
    subprocess.run([script, "start"], env=env, check=True, capture_output=True)
    try:
        yield f"http://127.0.0.1:{s3_port}"
    finally:
        subprocess.run([script, "stop"], env=env, check=True, capture_output=True)


def since() -> datetime:
    """A Reprocess --since after every record so far (whole seconds: one written this second must not count)."""
    return (datetime.now(UTC) + timedelta(seconds=1)).replace(microsecond=0)


def since_arg(instant: datetime) -> str:
    """`instant` as Reprocess's --since parameter takes it."""
    return instant.strftime("%Y-%m-%dT%H%M%S")


def server_cpu_seconds(workdir: Path) -> float:
    """CPU time the benchmark's SeaweedFS has used so far: on this machine it shares the cores with the workers."""
    pid = (workdir / "seaweed" / "weed.pid").read_text().strip()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def configure(workdir: Path, endpoint: str, prefix: str, raw: str = "") -> Path:
    """A luigi.cfg (the project's, pointed at the benchmark's store and prefix; the raw days under
    `raw`'s, when given) for this process and its children."""
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "luigi.cfg")
    cfg.read_dict({"s3": {"endpoint_url": endpoint, "region_name": "us-east-1"},
                   "storage": {"bucket": BUCKET, "raw_prefix": f"{raw or prefix}/raw", "curated_prefix": f"{prefix}/curated",
                               "records_prefix": f"{prefix}/records"}})
    path = workdir / f"{prefix}.cfg"
    with path.open("w") as out:
        cfg.write(out)
    os.environ.update(CREDENTIALS)
    os.environ["LUIGI_CONFIG_PATH"] = str(path)
    return path


def store_day(day: date, lines: Iterable[bytes], tweets: int) -> dict:
    """One raw fetch of the day, written and pointed at as RawTweets does; returns its pointer."""
    from flixluigi import config
    from flixluigi.store.layout import new_fetch_id
    from flixluigi.store.rawio import compressed
    from flixluigi.store.s3 import Storage
    from flixluigi.store.state import layout, point

    store, codec, fetch_id = Storage.from_config(), config.storage().raw_codec, new_fetch_id()
    key = layout().fetch_key(day, fetch_id, codec)
    started, pages = time.monotonic(), 0
    with store.upload(key) as sink, compressed(sink, codec) as raw:
        for line in lines:
            raw.write(line)
            pages += 1
    pointer = {"date": day.isoformat(), "fetch": fetch_id, "object": key, "etag": sink.etag, "size": sink.size,
               "query": "#FlixBus", "endpoint": "all", "pages": pages, "tweets": tweets, "expected_tweets": None,
               "duration_seconds": round(time.monotonic() - started, 3), "produced_at": datetime.now(UTC).isoformat(),
               "warnings": []}
    point(store, day, fetch_id, pointer)
    return pointer


def luigi(args: list[str], cfg: Path, workdir: Path) -> dict:
    """`luigi --module flixluigi ARGS` under /usr/bin/time: wall seconds, CPU seconds and peak RSS (MB)."""
    command = ["/usr/bin/time", "-v", str(ROOT / ".venv" / "bin" / "luigi"), "--module", "flixluigi", *args]
    started = time.perf_counter()
    done = subprocess.run(command, env={**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}, cwd=workdir, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"luigi {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")

    def field(name: str) -> float:
        return float(re.search(rf"{re.escape(name)}: ([0-9.]+)", done.stderr).group(1))

    return {"seconds": seconds, "cpu_seconds": field("User time (seconds)") + field("System time (seconds)"),
            "peak_rss_mb": field("Maximum resident set size (kbytes)") / 1024, "log": done.stderr}
