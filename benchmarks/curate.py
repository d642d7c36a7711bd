"""Curation alone on generated raw days of 100,000 and 1,000,000 tweets.

Raw days come from the sandbox's own generator and API code (full expansions, 100 tweets a
page, gzip JSONL like RawTweets writes); the 1,000,000-tweet day repeats the 100,000-tweet
pages ten times with fresh tweet ids. Each measurement runs in a child process so its peak RSS
is its own. The floor, in the same run: parse the same raw JSON and write the same row count
to Parquet, nothing else.
Targets: >= 100,000 tweets/s on one core, curation <= 2x the floor, peak RSS <= 300 MB at 1M.
Curation parses with Arrow's JSON reader, so a second floor made with that parser is printed too.

    python benchmarks/curate.py [--sizes 100000,1000000] [--dir /tmp/flixluigi-bench]
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

DAY = date(2022, 9, 12)
BASE = 100_000


def generate(path: Path, size: int) -> None:
    """Write a raw day of `size` tweets (a multiple of 100,000) as RawTweets would."""
    from flixluigi.config import DEFAULT_EXPANSIONS, DEFAULT_TWEET_FIELDS, DEFAULT_USER_FIELDS
    from flixluigi.sandbox.api import Corpus, SandboxApi

    api = SandboxApi(Corpus(volume=BASE, seed=1))
    params = {"query": "#FlixBus", "start_time": "2022-09-12T00:00:00Z", "end_time": "2022-09-13T00:00:00Z",
              "max_results": "100", "tweet.fields": DEFAULT_TWEET_FIELDS, "user.fields": DEFAULT_USER_FIELDS,
              "expansions": DEFAULT_EXPANSIONS}
    pages = []
    while True:
        status, body = api.handle("/2/tweets/search/all", params)
        assert status == 200, body
        pages.append(body)
        if "next_token" not in body["meta"]:
            break
        params["next_token"] = body["meta"]["next_token"]
    with gzip.open(path, "wb", compresslevel=1) as out:
        written = 0
        for copy in range(size // BASE + 1):
            for page in pages:
                data = page.get("data", [])
                if written >= size:
                    return
                if copy:
                    page = {**page, "data": [{**t, "id": str(int(t["id"]) + (copy << 17))} for t in data]}
                    data = page["data"]
                    if written + len(data) > size:
                        page["data"] = data = data[: size - written]
                out.write(orjson.dumps(page) + b"\n")
                written += len(data)


def curate(path: Path) -> dict:
    from flixluigi.curate import Curator, write_parquet
    from flixluigi.pseudonym import Pseudonymizer

    curator = Curator(DAY, Pseudonymizer(b"benchmark-key-0123456789abcdef0123"), datetime.now(UTC))
    started = time.perf_counter()
    with gzip.open(path, "rb") as lines, tempfile.TemporaryFile() as sink:  # like RawTweets' local temp file
        stats = write_parquet(lines, sink, curator)
    return {"rows": stats.rows, "seconds": time.perf_counter() - started}


def _floor(path: Path, ids_of: Callable[[IO[bytes]], Iterator[list[str] | pa.Array]]) -> dict:
    """Parse every page and write as many rows (the tweet ids) to Parquet: the unavoidable work."""
    schema = pa.schema([("tweet_id", pa.string())])
    started = time.perf_counter()
    rows = 0
    with gzip.open(path, "rb") as raw, tempfile.TemporaryFile() as sink, \
            pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        for ids in ids_of(raw):
            writer.write_table(pa.table({"tweet_id": ids}, schema=schema))
            rows += len(ids)
    return {"rows": rows, "seconds": time.perf_counter() - started}


def _ids_by_orjson(raw: IO[bytes]) -> Iterator[list[str]]:
    batch: list[str] = []
    for line in raw:
        batch += [t["id"] for t in orjson.loads(line).get("data", ())]
        if len(batch) >= 50_000:
            yield batch
            batch = []
    yield batch


def _ids_by_arrow(raw: IO[bytes]) -> Iterator[pa.Array]:
    """With the parser curation uses: Arrow's JSON reader, typed columns, no dicts."""
    from flixluigi.curate import _read_stream

    for pages in _read_stream(raw):
        yield pc.struct_field(pages.column("data").flatten(), "id")


def child(mode: str, path: str) -> None:
    modes = {"curate": curate, "floor": lambda p: _floor(p, _ids_by_orjson), "floor_arrow": lambda p: _floor(p, _ids_by_arrow)}
    result = modes[mode](Path(path))
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child would report its parent's peak.
    hwm = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM"))
    result["peak_rss_mb"] = int(hwm.split()[1]) / 1024
    print(json.dumps(result))


def measure(mode: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(path)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="tweets per generated day, multiples of 100,000")
    parser.add_argument("--dir", default="/tmp/flixluigi-bench", help="where raw days are generated (kept for reruns)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    workdir = Path(args.dir)
    workdir.mkdir(parents=True, exist_ok=True)
    for size in (int(s) for s in args.sizes.split(",")):
        path = workdir / f"raw-{size}.jsonl.gz"
        if not path.exists():
            started = time.perf_counter()
            generate(path, size)
            print(f"generated {size} tweets in {time.perf_counter() - started:.0f}s ({path.stat().st_size / 1e6:.0f} MB gzip)")
        cur, flo, arrow = measure("curate", path), measure("floor", path), measure("floor_arrow", path)
        assert cur["rows"] == flo["rows"] == arrow["rows"] == size, (cur, flo, arrow)
        print(f"{size:>9} tweets: curate {cur['seconds']:.2f}s = {size / cur['seconds']:,.0f} tweets/s, "
              f"peak RSS {cur['peak_rss_mb']:.0f} MB | floor {flo['seconds']:.2f}s = {size / flo['seconds']:,.0f} tweets/s, "
              f"peak RSS {flo['peak_rss_mb']:.0f} MB | curate/floor {cur['seconds'] / flo['seconds']:.2f}x | "
              f"floor with Arrow's parser {arrow['seconds']:.2f}s, curate/that {cur['seconds'] / arrow['seconds']:.2f}x")
    return None


if __name__ == "__main__":
    main()
