"""Curation of a generated raw day beside DuckDB on one thread and the parse floors, same file, same run.

The raw day comes from the sandbox's own generator and API code (full expansions, 100 tweets a
page) and is written as RawTweets writes it (`flixluigi.store.rawio.compressed`, zstd JSONL); a day of
more than 100,000 tweets repeats the 100,000-tweet pages with fresh tweet ids. Each measurement
runs in a child process, so its peak RSS (VmHWM) and CPU time are its own:

- curate: `Curator.batches` over the decompressed stream, every batch through `check_batch`, into
  one zstd Parquet file (`write_parquet`: what CuratedTweets does, minus S3 and the Delta commit);
- duckdb: the anchor, `SET threads=1`: read_json of the same file, unnest of data and
  includes.users, join of the authors, 29 columns (lists, url hosts, flags), zstd Parquet out;
- floor: decompress + orjson.loads of every page (the cheapest way Python can read the day);
- arrow: decompress + Arrow's JSON reader with curation's schema (the parser curation uses);
- raw:CODEC: writing the same day's pages as a fetch does (orjson + compression), with zstd as
  RawTweets writes it and with gzip at levels 1, 6 and 9.

Targets (issue 14): curation >= 1.0x DuckDB single-threaded; raw writing <= 0.3x curation. `--profile` writes a cProfile of the
curation of the first size to DIR/curate.prof (and prints its top entries).

    python benchmarks/curate.py [--sizes 100000] [--dir /tmp/flixluigi-bench] [--repeat 3] [--profile]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import orjson

DAY = date(2022, 9, 12)
BASE = 100_000
KEY = b"benchmark-key-0123456789abcdef0123"


def sandbox_pages(day: date = DAY, volume: int = BASE) -> list[dict]:
    """Every search page of a sandbox day, as the API answers them."""
    from datetime import timedelta

    from devkit.sandbox.api import Corpus, SandboxApi
    from flixluigi.config import DEFAULT_EXPANSIONS, DEFAULT_TWEET_FIELDS, DEFAULT_USER_FIELDS

    api = SandboxApi(Corpus(volume=volume, seed=1))
    params = {"query": "#FlixBus", "start_time": f"{day}T00:00:00Z", "end_time": f"{day + timedelta(days=1)}T00:00:00Z",
              "max_results": "100", "tweet.fields": DEFAULT_TWEET_FIELDS, "user.fields": DEFAULT_USER_FIELDS,
              "expansions": DEFAULT_EXPANSIONS}
    pages = []
    while True:
        status, body = api.handle("/2/tweets/search/all", params)
        assert status == 200, body
        pages.append(body)
        if "next_token" not in body["meta"]:
            return pages
        params["next_token"] = body["meta"]["next_token"]


def day_lines(pages: list[dict], size: int) -> Iterator[bytes]:
    """`size` tweets as JSON lines: the pages, repeated with fresh tweet ids past the first copy."""
    written, copy = 0, 0
    while written < size:
        for page in pages:
            data = page.get("data", [])
            if written >= size:
                return
            if copy:
                page = {**page, "data": [{**t, "id": str(int(t["id"]) + (copy << 17))} for t in data]}
                data = page["data"]
                if written + len(data) > size:
                    page["data"] = data = data[: size - written]
            yield orjson.dumps(page) + b"\n"
            written += len(data)
        copy += 1


def generate(path: Path, size: int) -> None:
    """A raw day of `size` tweets written as RawTweets writes it."""
    from flixluigi.store.rawio import compressed

    lines = day_lines(sandbox_pages(), size)
    with path.open("wb") as sink, compressed(sink, "zst") as raw:
        for line in lines:
            raw.write(line)


def raw_stream(path: Path):
    """The decompressed day, read as CuratedTweets reads a stored fetch."""
    from flixluigi.store.rawio import decompressed

    return decompressed(path.open("rb"), path.name)


def curate(path: Path) -> dict:
    from devkit.parquet import write_parquet
    from flixluigi.curation.curator import Curator
    from flixluigi.curation.pseudonym import Pseudonymizer
    from flixluigi.work import bounded_memory

    bounded_memory()  # as curate_day
    curator = Curator(DAY, Pseudonymizer(KEY), datetime.now(UTC))
    with raw_stream(path) as raw, tempfile.TemporaryFile() as sink:
        return {"rows": write_parquet(raw, sink, curator).rows}


def parse_floor(path: Path) -> dict:
    rows = 0
    with raw_stream(path) as raw:
        for line in raw:
            rows += len(orjson.loads(line).get("data", ()))
    return {"rows": rows}


def arrow_floor(path: Path) -> dict:
    import pyarrow.compute as pc

    from flixluigi.curation.curator import _read_stream

    with raw_stream(path) as raw:
        return {"rows": sum(len(pc.list_flatten(pages.column("data"))) for pages in _read_stream(raw))}


RAW_CODECS = {"zst": "zstd, pyarrow's default level (1): what RawTweets writes", "gz1": "gzip level 1",
              "gz6": "gzip level 6", "gz9": "gzip level 9"}


class _Counter(io.RawIOBase):
    """A sink that only counts what it is given (an upload's cost is not the codec's)."""

    size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)


def write_raw(path: Path, codec: str) -> dict:
    """Serialise the day's pages (orjson) and compress them as RawTweets does (`compressed`), or
    with gzip at a level. The pages are parsed before the clock starts: a fetch has them as dicts."""
    import gzip

    from flixluigi.store.rawio import compressed

    with raw_stream(path) as raw:
        pages = [orjson.loads(line) for line in raw]
    started = time.perf_counter()
    with _Counter() as sink:
        if codec == "zst":
            with compressed(sink, "zst") as out:
                for page in pages:
                    out.write(orjson.dumps(page) + b"\n")
        else:
            with gzip.GzipFile(fileobj=sink, mode="wb", mtime=0, compresslevel=int(codec[2:])) as out:
                for page in pages:
                    out.write(orjson.dumps(page) + b"\n")
    return {"rows": sum(len(page.get("data", ())) for page in pages), "clock": time.perf_counter() - started,
            "mb": sink.size / 1e6}


_S = "VARCHAR"
DUCK_TWEET = (f"STRUCT(id {_S}, created_at {_S}, text {_S}, lang {_S}, source {_S}, conversation_id {_S}, "
              f"note_tweet STRUCT(text {_S}), author_id {_S}, in_reply_to_user_id {_S}, possibly_sensitive BOOLEAN, "
              f"edit_history_tweet_ids {_S}[], referenced_tweets STRUCT(type {_S}, id {_S})[], "
              "public_metrics STRUCT(retweet_count BIGINT, reply_count BIGINT, like_count BIGINT, quote_count BIGINT, "
              "impression_count BIGINT), "
              f"entities STRUCT(hashtags STRUCT(tag {_S})[], mentions STRUCT(username {_S}, id {_S})[], "
              f"urls STRUCT(expanded_url {_S})[]))")
DUCK_USER = (f"STRUCT(id {_S}, username {_S}, name {_S}, location {_S}, verified BOOLEAN, created_at {_S}, "
             "public_metrics STRUCT(followers_count BIGINT, following_count BIGINT, tweet_count BIGINT))")
DUCK_FLATTEN = """
COPY (
  WITH pages AS (
    SELECT row_number() OVER () AS page, data, includes
    FROM read_json('{raw}', format = 'newline_delimited', compression = 'zstd',
                   columns = {{data: '{tweet}[]', includes: 'STRUCT(users {user}[])'}})),
  tweets AS (SELECT page, unnest(data) AS t FROM pages),
  users AS (SELECT page, unnest(includes.users) AS u FROM pages)
  SELECT t.id AS tweet_id, CAST(t.created_at AS TIMESTAMPTZ) AS created_at, DATE '{day}' AS date,
         coalesce(t.note_tweet.text, t.text) AS text, t.lang, t.source, t.conversation_id, t.author_id,
         u.location AS author_location, u.public_metrics.followers_count AS author_followers_count,
         u.public_metrics.following_count AS author_following_count, u.public_metrics.tweet_count AS author_tweet_count,
         u.verified AS author_verified, CAST(u.created_at AS TIMESTAMPTZ) AS author_created_at,
         list_transform(t.entities.hashtags, h -> lower(h.tag)) AS hashtags,
         list_transform(t.entities.mentions, m -> m.id) AS mentioned_user_ids, t.in_reply_to_user_id,
         list_contains(list_transform(t.referenced_tweets, r -> r.type), 'retweeted') AS is_retweet,
         list_contains(list_transform(t.referenced_tweets, r -> r.type), 'replied_to') AS is_reply,
         list_contains(list_transform(t.referenced_tweets, r -> r.type), 'quoted') AS is_quote,
         list_transform(t.referenced_tweets, r -> r.id) AS referenced_tweet_ids,
         t.public_metrics.retweet_count, t.public_metrics.reply_count, t.public_metrics.like_count,
         t.public_metrics.quote_count, t.public_metrics.impression_count,
         list_sort(list_distinct(list_transform(t.entities.urls,
             x -> lower(regexp_extract(x.expanded_url, '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?([^:/?#]*)', 1)))))
           AS url_domains,
         t.possibly_sensitive, t.edit_history_tweet_ids[1] AS edit_chain_id, t.edit_history_tweet_ids
  FROM tweets LEFT JOIN users ON tweets.page = users.page AND t.author_id = u.id
) TO '{out}' (FORMAT parquet, COMPRESSION zstd)
"""


def duckdb_flatten(path: Path) -> dict:
    import duckdb

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "day.parquet"
        db = duckdb.connect()
        db.execute("SET threads = 1")
        db.execute(DUCK_FLATTEN.format(raw=path, tweet=DUCK_TWEET, user=DUCK_USER, day=DAY, out=out))
        return {"rows": db.sql(f"SELECT count(*) FROM '{out}'").fetchone()[0]}


MODES: dict[str, Callable[[Path], dict]] = {"curate": curate, "duckdb": duckdb_flatten, "floor": parse_floor, "arrow": arrow_floor,
                                            **{f"raw:{codec}": lambda path, codec=codec: write_raw(path, codec)
                                               for codec in RAW_CODECS}}


def peak_rss_mb() -> float:
    """VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child would report its parent's peak."""
    hwm = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM"))
    return int(hwm.split()[1]) / 1024


def child(mode: str, path: str, profile: str) -> None:
    run = MODES[mode]
    if mode == "curate":  # imports outside the timing, as a task has them before it runs
        import devkit.parquet  # noqa: F401
        import flixluigi.work  # noqa: F401
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        result = profiler.runcall(run, Path(path))
        profiler.dump_stats(profile)
    else:
        result = run(Path(path))
    result["seconds"] = result.pop("clock", time.perf_counter() - started)
    after = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_seconds"] = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def measure(mode: str, path: Path, profile: str = "") -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(path), profile], check=True, capture_output=True,
                         text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def best(mode: str, path: Path, repeat: int) -> dict:
    """The fastest of `repeat` runs: other work on the machine only ever adds time."""
    return min((measure(mode, path) for _ in range(repeat)), key=lambda r: r["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000", help="tweets per generated day, comma-separated")
    parser.add_argument("--dir", default="/tmp/flixluigi-bench", help="where raw days are generated (kept for reruns)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the fastest counts")
    parser.add_argument("--profile", action="store_true", help="also profile the curation of the first size")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    workdir = Path(args.dir)
    workdir.mkdir(parents=True, exist_ok=True)
    for n, size in enumerate(int(s) for s in args.sizes.split(",")):
        path = workdir / f"raw-{size}.jsonl.zst"
        if not path.exists():
            started = time.perf_counter()
            generate(path, size)
            print(f"generated {size:,} tweets in {time.perf_counter() - started:.0f}s ({path.stat().st_size / 1e6:.0f} MB zstd)")
        figures = {mode: best(mode, path, args.repeat) for mode in MODES}
        assert all(f["rows"] == size for f in figures.values()), figures
        cur, duck = figures["curate"], figures["duckdb"]
        print(f"{size:,} tweets, best of {args.repeat}:")
        for mode, label in (("curate", "curation"), ("duckdb", "DuckDB, 1 thread"), ("floor", "zstd + orjson"),
                            ("arrow", "zstd + Arrow JSON")):
            f = figures[mode]
            print(f"  {label:<18} {f['seconds']:6.2f} s  {size / f['seconds']:>9,.0f} tweets/s  cpu {f['cpu_seconds']:5.2f} s  "
                  f"peak RSS {f['peak_rss_mb']:4.0f} MB")
        print(f"  curation vs DuckDB: {duck['seconds'] / cur['seconds']:.2f}x (target >= 1.0x); "
              f"vs zstd + orjson: {figures['floor']['seconds'] / cur['seconds']:.2f}x; "
              f"Arrow's parse is {figures['arrow']['seconds'] / cur['seconds']:.0%} of curation")
        print("  writing the raw day (orjson + compression), target <= 0.3x curation:")
        for codec, label in RAW_CODECS.items():
            f = figures[f"raw:{codec}"]
            print(f"    {label:<52} {f['seconds']:5.2f} s = {f['seconds'] / cur['seconds']:.2f}x curation, {f['mb']:4.0f} MB")
        if args.profile and n == 0:
            import pstats

            target = workdir / "curate.prof"
            measure("curate", path, str(target))
            pstats.Stats(str(target)).sort_stats("tottime").print_stats(15)
    return None


if __name__ == "__main__":
    main()
