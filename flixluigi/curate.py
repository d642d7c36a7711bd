"""Raw API pages -> curated rows: pure flattening, pseudonymisation, quality gate, schema.

Pages stream in one at a time and leave as Arrow record batches, so memory stays bounded
however large the day. Nothing here touches S3 or Luigi: the task hands in lines and a sink.
The output is deterministic: the same raw day and key give the same rows in the same order.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import IO

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from flixluigi.pseudonym import Pseudonymizer, is_pseudonym

SCHEMA_VERSION = 1
BATCH_ROWS = 20_000
UNKNOWN_HANDLE = "@[user]"
# twitter-text's rule: a handle is not preceded by a letter, digit or one of these marks.
HANDLE_RE = re.compile(r"(?<![A-Za-z0-9_!@#$%&*])[@＠]([A-Za-z0-9_]{1,15})")
DIGITS_RE = re.compile(r"\d{6,}")

_TS = pa.timestamp("ms", tz="UTC")
SCHEMA = pa.schema([
    ("tweet_id", pa.string()),
    ("created_at", _TS),
    ("date", pa.date32()),
    ("text", pa.string()),
    ("lang", pa.string()),
    ("source", pa.string()),
    ("conversation_id", pa.string()),
    ("author_id", pa.string()),
    ("author_location", pa.string()),
    ("author_followers_count", pa.int64()),
    ("author_following_count", pa.int64()),
    ("author_tweet_count", pa.int64()),
    ("author_verified", pa.bool_()),
    ("author_created_at", _TS),
    ("hashtags", pa.list_(pa.string())),
    ("mentioned_user_ids", pa.list_(pa.string())),
    ("in_reply_to_user_id", pa.string()),
    ("is_retweet", pa.bool_()),
    ("is_reply", pa.bool_()),
    ("is_quote", pa.bool_()),
    ("referenced_tweet_ids", pa.list_(pa.string())),
    ("retweet_count", pa.int64()),
    ("reply_count", pa.int64()),
    ("like_count", pa.int64()),
    ("quote_count", pa.int64()),
    ("impression_count", pa.int64()),
    ("url_domains", pa.list_(pa.string())),
    ("possibly_sensitive", pa.bool_()),
    ("processed_at", _TS),
    ("pseudonym_key_id", pa.string()),
    ("schema_version", pa.int32()),
], metadata={"flixluigi.schema_version": str(SCHEMA_VERSION)})
PSEUDONYM_COLUMNS = ("author_id", "in_reply_to_user_id")
# Filled once per batch rather than per row.
CONSTANT_COLUMNS = ("date", "processed_at", "pseudonym_key_id", "schema_version")
ROW_COLUMNS = tuple(name for name in SCHEMA.names if name not in CONSTANT_COLUMNS)
FREE_TEXT_COLUMNS = ("text", "author_location", "source")


class QualityError(ValueError):
    """The curated day would be wrong or would leak; nothing is published."""


def _host(url: str | None) -> str:
    """Lower-case host of an absolute URL (what urlsplit().hostname gives, at a fraction of its cost)."""
    if not url or "//" not in url:
        return ""
    host = url.split("//", 1)[1].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    return host.rsplit("@", 1)[-1].split(":", 1)[0].lower()


def _timestamp(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class CurateStats:
    pages: int = 0
    rows: int = 0
    duplicates: int = 0
    partial_errors: int = 0
    raw_user_ids: set[str] = field(default_factory=set, repr=False)
    raw_usernames: set[str] = field(default_factory=set, repr=False)


class Curator:
    """Flattens one day's pages; keeps one row per tweet id, first seen wins."""

    def __init__(self, day: date, pseudonymize: Pseudonymizer, processed_at: datetime | None = None):
        self.day = day
        self.pseudo = pseudonymize
        self.processed_at = processed_at or datetime.now(UTC)
        self.stats = CurateStats()
        self._seen: set[int | str] = set()
        self._lo = datetime(day.year, day.month, day.day, tzinfo=UTC)
        self._day_prefix = day.isoformat() + "T"
        self._columns: dict[str, list] = {name: [] for name in ROW_COLUMNS}

    def batches(self, pages: Iterable[bytes | dict]) -> Iterator[pa.RecordBatch]:
        for page in pages:
            self.add_page(orjson.loads(page) if isinstance(page, (bytes, str)) else page)
            if len(self._columns["tweet_id"]) >= BATCH_ROWS:
                yield self._flush()
        if self._columns["tweet_id"] or not self.stats.rows:
            yield self._flush()

    def add_page(self, page: dict) -> None:
        self.stats.pages += 1
        self.stats.partial_errors += len(page.get("errors", ()))
        includes = page.get("includes") or {}
        users = {u["id"]: u for u in includes.get("users", ()) if "id" in u}
        handles = {u["username"].lower(): u["id"] for u in users.values() if u.get("username")}
        self.stats.raw_user_ids.update(users)
        self.stats.raw_usernames.update(handles)
        for error in page.get("errors", ()):
            if error.get("resource_type") == "user":
                self._note_user(None, error.get("value") or error.get("resource_id"))
        for tweet in page.get("data", ()):
            self._add_tweet(tweet, users, handles)

    def _note_user(self, user_id: str | None, username: str | None) -> None:
        if user_id:
            self.stats.raw_user_ids.add(str(user_id))
        if username:
            self.stats.raw_usernames.add(username.lower())

    def _add_tweet(self, tweet: dict, users: dict[str, dict], handles: dict[str, str]) -> None:
        tweet_id = tweet.get("id")
        if not tweet_id:
            raise QualityError(f"a tweet without id on raw page {self.stats.pages}; the raw day is corrupt: re-fetch it")
        # Ids are kept as ints: a million of them cost half the memory of the strings.
        key = int(tweet_id) if tweet_id.isdigit() else tweet_id
        if key in self._seen:
            self.stats.duplicates += 1
            return
        self._seen.add(key)
        created = tweet.get("created_at") or ""
        if not (created.startswith(self._day_prefix) and created.endswith("Z")) and not self._inside_day(created):
            raise QualityError(f"tweet {tweet_id} created at {tweet.get('created_at')} is outside {self.day}; "
                               "the raw day holds another day's tweets: re-fetch it")
        pseudo = self.pseudo
        author_id = tweet.get("author_id")
        if author_id:
            self.stats.raw_user_ids.add(author_id)
        author = users.get(author_id) or {}
        metrics = author.get("public_metrics") or {}
        entities = tweet.get("entities") or {}
        mentions = entities.get("mentions") or ()
        mentioned: dict[str, str] = {}
        if mentions:
            for m in mentions:
                self._note_user(m.get("id"), m.get("username"))
                if m.get("id") and m.get("username"):
                    mentioned[m["username"].lower()] = m["id"]
        refs = tweet.get("referenced_tweets") or ()
        ref_types = {r.get("type") for r in refs}
        reply_to = tweet.get("in_reply_to_user_id")
        if reply_to:
            self.stats.raw_user_ids.add(reply_to)
        counts = tweet.get("public_metrics") or {}
        c = self._columns
        c["tweet_id"].append(tweet_id)
        c["created_at"].append(created)
        c["text"].append(self._scrub(tweet.get("text"), mentioned, handles))
        c["lang"].append(tweet.get("lang"))
        c["source"].append(tweet.get("source"))
        c["conversation_id"].append(tweet.get("conversation_id"))
        c["author_id"].append(pseudo(author_id))
        c["author_location"].append(author.get("location"))
        c["author_followers_count"].append(metrics.get("followers_count"))
        c["author_following_count"].append(metrics.get("following_count"))
        c["author_tweet_count"].append(metrics.get("tweet_count"))
        c["author_verified"].append(author.get("verified"))
        c["author_created_at"].append(author.get("created_at"))
        c["hashtags"].append([h["tag"].lower() for h in entities.get("hashtags", ()) if h.get("tag")])
        c["mentioned_user_ids"].append([pseudo(m.get("id") or handles.get(m.get("username", "").lower()))
                                        for m in mentions if m.get("id") or m.get("username", "").lower() in handles])
        c["in_reply_to_user_id"].append(pseudo(reply_to))
        c["is_retweet"].append("retweeted" in ref_types)
        c["is_reply"].append("replied_to" in ref_types)
        c["is_quote"].append("quoted" in ref_types)
        c["referenced_tweet_ids"].append([r["id"] for r in refs if r.get("id")])
        c["retweet_count"].append(counts.get("retweet_count"))
        c["reply_count"].append(counts.get("reply_count"))
        c["like_count"].append(counts.get("like_count"))
        c["quote_count"].append(counts.get("quote_count"))
        c["impression_count"].append(counts.get("impression_count"))
        urls = entities.get("urls")
        c["url_domains"].append(sorted({_host(u.get("expanded_url")) for u in urls} - {""}) if urls else [])
        c["possibly_sensitive"].append(tweet.get("possibly_sensitive"))
        self.stats.rows += 1

    def _scrub(self, text: str | None, mentioned: dict[str, str], handles: dict[str, str]) -> str | None:
        """Replace every @handle by its user's pseudonym, or a placeholder when the id is unknown."""
        if not text or ("@" not in text and "＠" not in text):
            return text

        def replace(match: re.Match) -> str:
            name = match.group(1).lower()
            user_id = mentioned.get(name) or handles.get(name)
            return "@" + self.pseudo(user_id) if user_id else UNKNOWN_HANDLE

        return HANDLE_RE.sub(replace, text)

    def _inside_day(self, created: str) -> bool:
        """Slow path for stamps not in the API's usual `YYYY-MM-DDTHH:MM:SS.sssZ` form."""
        try:
            stamp = _timestamp(created)
        except ValueError:
            return False
        return stamp is not None and stamp.tzinfo is not None and 0 <= (stamp - self._lo).total_seconds() < 86400

    def _flush(self) -> pa.RecordBatch:
        rows = len(self._columns["tweet_id"])
        arrays = {name: pa.array(values, type=SCHEMA.field(name).type) for name, values in self._columns.items()
                  if SCHEMA.field(name).type != _TS}
        for name in ("created_at", "author_created_at"):
            arrays[name] = pa.array(self._columns[name], type=pa.string()).cast(_TS)
        constants = {"date": self.day, "processed_at": self.processed_at, "pseudonym_key_id": self.pseudo.key_id,
                     "schema_version": SCHEMA_VERSION}
        for name, value in constants.items():
            arrays[name] = pa.repeat(pa.scalar(value, type=SCHEMA.field(name).type), rows)
        self._columns = {name: [] for name in ROW_COLUMNS}
        return pa.RecordBatch.from_arrays([arrays[name] for name in SCHEMA.names], schema=SCHEMA)


def check_batch(batch: pa.RecordBatch, stats: CurateStats) -> None:
    """The privacy half of the quality gate, on what is about to be written."""
    for name in PSEUDONYM_COLUMNS:
        for value in batch.column(name).to_pylist():
            if value is not None and not is_pseudonym(value):
                raise QualityError(f"column {name} holds a value that is not a pseudonym; refusing to publish")
    for value in batch.column("mentioned_user_ids").flatten().to_pylist():
        if not is_pseudonym(value):
            raise QualityError("column mentioned_user_ids holds a value that is not a pseudonym; refusing to publish")
    for name in FREE_TEXT_COLUMNS:
        for value in batch.column(name).to_pylist():
            if not value:
                continue
            if "@" in value or "＠" in value:
                for handle in HANDLE_RE.findall(value):
                    if handle.lower() in stats.raw_usernames:
                        raise QualityError(f"column {name} still names a raw user handle; refusing to publish")
            for digits in DIGITS_RE.findall(value):
                if digits in stats.raw_user_ids:
                    raise QualityError(f"column {name} holds a raw user id; refusing to publish")


def write_parquet(pages: Iterable[bytes | dict], sink: IO[bytes] | str, curator: Curator) -> CurateStats:
    """Stream pages into Parquet row groups, gating each batch; raises QualityError on any violation.

    The cyclic GC is paused meanwhile: a batch holds ~10 small lists per row and no cycles, and
    rescanning them at every collection made curation several times slower.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with pq.ParquetWriter(sink, SCHEMA, compression="zstd") as writer:
            for batch in curator.batches(pages):
                check_batch(batch, curator.stats)
                writer.write_batch(batch)
    finally:
        if was_enabled:
            gc.enable()
    return curator.stats
