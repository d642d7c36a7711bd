"""Raw API pages -> curated rows: pure flattening, pseudonymisation, quality gate, schema.

Pages stream in and are flattened a chunk of a few thousand tweets at a time: Arrow converts
the parsed tweets and users to typed columns in C++ and does the per-row work (field picks,
joins of authors, lists, day bounds) in vectorised kernels; Python only touches what needs it
(distinct user ids to pseudonymise, texts that contain an @). Memory stays bounded however
large the day. Nothing here touches S3 or Luigi: the task hands in lines and a sink. The
output is deterministic: the same raw day and key give the same rows in the same order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import IO

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq

from flixluigi.pseudonym import PSEUDONYM_RE, Pseudonymizer

SCHEMA_VERSION = 2
ROW_GROUP_ROWS = 50_000
UNKNOWN_HANDLE = "@[user]"
# twitter-text's rule: a handle is not preceded by a letter, digit or one of these marks. The
# look-behind comes after the @ so the scan jumps from @ to @ (4x faster than leading with it).
HANDLE_RE = re.compile(r"[@＠](?<![A-Za-z0-9_!@#$%&*][@＠])([A-Za-z0-9_]{1,15})")
DIGITS_RE = re.compile(r"\d{6,}")
SEPARATOR = "\n\x00\n"  # between texts scrubbed in one pass; no handle can span it
# What the scrubbing writes in place of a handle: removed before the gate looks for leftovers.
SCRUBBED_RE = r"[@＠](k[0-9a-f]{8}:[0-9a-f]{32}|\[user\])"
HOST_RE = r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?(?P<host>[^:/?#]*)"

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
    ("edit_chain_id", pa.string()),
    ("edit_history_tweet_ids", pa.list_(pa.string())),
    ("processed_at", _TS),
    ("pseudonym_key_id", pa.string()),
    ("schema_version", pa.int32()),
    ("build_id", pa.string()),
], metadata={"flixluigi.schema_version": str(SCHEMA_VERSION)})
PSEUDONYM_COLUMNS = ("author_id", "in_reply_to_user_id")

_S, _I = pa.string(), pa.int64()
# What the flattening reads of the raw objects; everything else in them is ignored.
RAW_TWEET = pa.struct([
    ("id", _S), ("created_at", _S), ("text", _S), ("lang", _S), ("source", _S), ("conversation_id", _S),
    ("author_id", _S), ("in_reply_to_user_id", _S), ("possibly_sensitive", pa.bool_()),
    ("note_tweet", pa.struct([("text", _S)])), ("edit_history_tweet_ids", pa.list_(_S)),
    ("referenced_tweets", pa.list_(pa.struct([("type", _S), ("id", _S)]))),
    ("public_metrics", pa.struct([("retweet_count", _I), ("reply_count", _I), ("like_count", _I), ("quote_count", _I),
                                  ("impression_count", _I)])),
    ("entities", pa.struct([("hashtags", pa.list_(pa.struct([("tag", _S)]))),
                            ("mentions", pa.list_(pa.struct([("username", _S), ("id", _S)]))),
                            ("urls", pa.list_(pa.struct([("expanded_url", _S)])))])),
])
RAW_USER = pa.struct([
    ("id", _S), ("username", _S), ("location", _S), ("verified", pa.bool_()), ("created_at", _S),
    ("public_metrics", pa.struct([("followers_count", _I), ("following_count", _I), ("tweet_count", _I)])),
])
FREE_TEXT_COLUMNS = ("text", "author_location", "source")


class QualityError(ValueError):
    """The curated day would be wrong or would leak; nothing is published."""


@dataclass
class CurateStats:
    pages: int = 0
    rows: int = 0
    duplicates: int = 0
    superseded: int = 0  # older versions of edited posts left out for the chain's newest
    partial_errors: int = 0
    raw_user_ids: set[str] = field(default_factory=set, repr=False)
    raw_usernames: set[str] = field(default_factory=set, repr=False)


def _rebuild(lists: pa.Array, values: pa.Array) -> pa.ListArray:
    """Lists as long as those of `lists` (null rows: empty) holding `values`, aligned with lists.flatten()."""
    lengths = pc.fill_null(pc.list_value_length(lists), 0)
    offsets = pa.concat_arrays([pa.array([0], pa.int32()), pc.cumulative_sum(lengths).cast(pa.int32())])
    return pa.ListArray.from_arrays(offsets, values)


def _rows_with(lists: pa.Array, types: pa.Array, wanted: str, rows: int) -> pa.Array:
    """Per row: does any element of `lists` have this type?"""
    parents = pc.filter(pc.list_parent_indices(lists), pc.fill_null(pc.equal(types, wanted), False))
    return pc.is_in(pa.array(range(rows), pa.int64()), value_set=parents)


RAW_PAGE = pa.schema([
    ("data", pa.list_(RAW_TWEET)),
    ("includes", pa.struct([("users", pa.list_(RAW_USER))])),
    ("errors", pa.list_(pa.struct([("resource_type", _S), ("value", _S), ("resource_id", _S)]))),
])
# Raw bytes handed to Arrow's JSON parser at a time (whole lines: one more line completes a chunk).
# Arrow's streaming reader reads ahead without bound, so the chunks are cut here to bound memory.
JSON_CHUNK_BYTES = 4 << 20
PAGES_PER_GROUP = 50


def _malformed(exc: Exception) -> QualityError:
    return QualityError(f"the raw day holds a page that is not a valid API page ({' '.join(str(exc).split())[:200]}); "
                        "re-fetch the day")


def _read_stream(stream: IO[bytes]) -> Iterator[pa.RecordBatch]:
    options = pj.ParseOptions(explicit_schema=RAW_PAGE, unexpected_field_behavior="ignore")
    while chunk := stream.read(JSON_CHUNK_BYTES):
        chunk += stream.readline()
        try:
            # One thread: the pipeline's figures are per core, and workers run side by side.
            table = pj.read_json(pa.py_buffer(chunk), parse_options=options,
                                 read_options=pj.ReadOptions(block_size=len(chunk) + 1, use_threads=False))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise _malformed(exc) from None
        yield from table.to_batches()


def _group_pages(pages: Iterable[bytes | dict]) -> Iterator[pa.RecordBatch]:
    group: list[dict] = []
    for page in pages:
        group.append(orjson.loads(page) if isinstance(page, (bytes, str)) else page)
        if len(group) == PAGES_PER_GROUP:
            yield _pages_batch(group)
            group = []
    if group:
        yield _pages_batch(group)


def _pages_batch(pages: list[dict]) -> pa.RecordBatch:
    try:
        return pa.RecordBatch.from_struct_array(pa.array(pages, type=pa.struct(list(RAW_PAGE))))
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        raise _malformed(exc) from None


def _author_rows(tweets: pa.StructArray, tweet_pages: pa.Array, users: pa.StructArray, user_pages: pa.Array) -> pa.Array:
    """Per tweet, the row in `users` of its author as included in the same page (null if absent)."""
    def keys(pages: pa.Array, ids: pa.Array) -> pa.Array:
        return pc.binary_join_element_wise(pages.cast(_S), ids, ":")

    return pc.index_in(keys(tweet_pages, pc.struct_field(tweets, "author_id")),
                       value_set=keys(user_pages, pc.struct_field(users, "id")))


class _Handles:
    """username -> user id for one chunk, from its users and mention entities, looked up in Arrow."""

    def __init__(self, users: pa.StructArray, mention_ids: pa.Array, mention_names: pa.Array):
        names = pa.concat_arrays([pc.utf8_lower(mention_names), pc.utf8_lower(pc.struct_field(users, "username"))])
        ids = pa.concat_arrays([mention_ids, pc.struct_field(users, "id")])
        known = pc.and_(pc.is_valid(names), pc.is_valid(ids))
        self._names, self._ids = names.filter(known), ids.filter(known)

    def ids(self, names: pa.Array) -> pa.Array:
        """The id of each username (any case), null when the chunk does not know it."""
        return self._ids.take(pc.index_in(pc.utf8_lower(names), value_set=self._names))


def _full_text(tweets: pa.StructArray) -> pa.Array:
    """A long post's full text is note_tweet.text; `text` holds only its first 280 characters."""
    return pc.coalesce(pc.struct_field(pc.struct_field(tweets, "note_tweet"), "text"), pc.struct_field(tweets, "text"))


def _edit_columns(tweets: pa.StructArray) -> tuple[pa.Array, pa.Array]:
    """Per row: the chain's id (its oldest id) and its ids in ascending order; [id] when never edited.

    The order is worked out from the ids (snowflakes grow with time), not taken from the API's list.
    """
    ids = pc.struct_field(tweets, "id")
    history = pc.struct_field(tweets, "edit_history_tweet_ids")
    rows = len(ids)
    single = pa.ListArray.from_arrays(pa.array(range(rows + 1), pa.int32()), ids)
    edited = pc.indices_nonzero(pc.greater(pc.fill_null(pc.list_value_length(history), 0), 1)).to_pylist()
    if not edited:
        return ids, single
    chains = [sorted({*history[row].as_py(), ids[row].as_py()}, key=int) for row in edited]
    where = list(range(rows))
    for number, row in enumerate(edited):
        where[row] = rows + number
    take = pa.array(where, pa.int64())
    return (pa.concat_arrays([ids, pa.array([c[0] for c in chains], _S)]).take(take),
            pa.concat_arrays([single, pa.array(chains, pa.list_(_S))]).take(take))


class Curator:
    """Flattens one day's pages; keeps one row per tweet id, first seen wins, and one row per edit chain.

    Of an edited post's versions the newest of the day is kept (see docs/schema.md). A version
    whose id is the largest of its chain is final and goes out at once; an older one is held back
    (few rows) until the chain's newest arrives, which replaces it, or until the stream ends, when
    the newest version held is released. So the result does not depend on the order pages arrive in.
    """

    def __init__(self, day: date, pseudonymize: Pseudonymizer, processed_at: datetime | None = None, build_id: str = ""):
        self.day = day
        self.build_id = build_id
        self.pseudo = pseudonymize
        self.processed_at = processed_at or datetime.now(UTC)
        self.stats = CurateStats()
        self._seen: set[int | str] = set()
        self._final: set[str] = set()  # chains whose newest version went out
        self._held: dict[str, tuple[int, pa.RecordBatch]] = {}  # chain -> (id, row) of its newest older version so far
        self._lo = datetime(day.year, day.month, day.day, tzinfo=UTC)

    def batches(self, source: IO[bytes] | Iterable[bytes | dict]) -> Iterator[pa.RecordBatch]:
        """Curated batches from a raw day: a binary stream of JSON lines (read by Arrow's JSON
        reader, no Python objects per tweet) or an iterable of pages (lines or parsed dicts)."""
        produced = False
        for pages in (_read_stream(source) if hasattr(source, "read") else _group_pages(source)):
            batch = self._curate(pages)
            if batch.num_rows or not produced:
                produced = True
                yield batch
        if self._held:
            held = pa.Table.from_batches([row for _, row in self._held.values()], SCHEMA).combine_chunks().to_batches()[0]
            self._held.clear()
            self.stats.rows += held.num_rows
            produced = True
            yield held
        if not produced:
            yield self._curate(pa.RecordBatch.from_pylist([], schema=RAW_PAGE))

    def _curate(self, pages: pa.RecordBatch) -> pa.RecordBatch:
        first_page = self.stats.pages + 1
        self.stats.pages += pages.num_rows
        self._note_errors(pages.column("errors"))
        data = pages.column("data")
        tweets = data.flatten()
        users_lists = pc.struct_field(pages.column("includes"), "users")
        users = users_lists.flatten()
        authors = users.take(_author_rows(tweets, pc.list_parent_indices(data), users, pc.list_parent_indices(users_lists)))
        self._note_users(tweets, users)
        created = self._inside_day(tweets, data, first_page)
        keep = self._first_seen(pc.struct_field(tweets, "id"))
        if keep is not None:
            tweets, authors, created = tweets.filter(keep), authors.filter(keep), created.filter(keep)
        batch = self._newest_of_chains(self._columns(tweets, users, authors, created))
        self.stats.rows += batch.num_rows
        return batch

    def _newest_of_chains(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The rows to publish now: all but versions of an edit chain that are not (yet) its newest."""
        history = batch.column("edit_history_tweet_ids")
        edited = pc.indices_nonzero(pc.greater(pc.list_value_length(history), 1)).to_pylist()
        if not edited:
            return batch
        keep = [True] * batch.num_rows
        ids, chains = batch.column("tweet_id"), batch.column("edit_chain_id")
        for row in edited:
            tweet, chain, newest = int(ids[row].as_py()), chains[row].as_py(), int(history[row][-1].as_py())
            if chain in self._final:
                keep[row] = False
                self.stats.superseded += 1
            elif tweet == newest:
                self._final.add(chain)
                self.stats.superseded += chain in self._held
                self._held.pop(chain, None)
            else:
                keep[row] = False
                self.stats.superseded += 1
                if chain not in self._held or self._held[chain][0] < tweet:
                    self._held[chain] = (tweet, batch.slice(row, 1))
        return batch.filter(pa.array(keep, pa.bool_()))

    def _note_errors(self, errors: pa.Array) -> None:
        """Partial errors (suspended or deleted users...) are counted; their usernames are raw identities."""
        items = errors.flatten()
        self.stats.partial_errors += len(items)
        users = pc.fill_null(pc.equal(pc.struct_field(items, "resource_type"), "user"), False)
        names = pc.coalesce(pc.struct_field(items, "value"), pc.struct_field(items, "resource_id"))
        self.stats.raw_usernames.update(pc.drop_null(pc.utf8_lower(names.filter(users))).to_pylist())

    def _note_users(self, tweets: pa.StructArray, users: pa.StructArray) -> None:
        """Every raw user id and username of the day, for the privacy gate."""
        mentions = pc.struct_field(pc.struct_field(tweets, "entities"), "mentions").flatten()
        for ids in (pc.struct_field(users, "id"), pc.struct_field(tweets, "author_id"), pc.struct_field(tweets, "in_reply_to_user_id"),
                    pc.struct_field(mentions, "id")):
            self.stats.raw_user_ids.update(pc.unique(pc.drop_null(ids)).to_pylist())
        for names in (pc.struct_field(users, "username"), pc.struct_field(mentions, "username")):
            self.stats.raw_usernames.update(pc.unique(pc.drop_null(pc.utf8_lower(names))).to_pylist())

    def _inside_day(self, tweets: pa.StructArray, data: pa.ListArray, first_page: int) -> pa.Array:
        ids, stamps = pc.struct_field(tweets, "id"), pc.struct_field(tweets, "created_at")
        if ids.null_count:
            first = pc.index(pc.is_null(ids), True).as_py()
            page = first_page + pc.list_parent_indices(data)[first].as_py()
            raise QualityError(f"a tweet without id on raw page {page}; the raw day is corrupt: re-fetch it")
        try:
            created = stamps.cast(_TS)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            created = pa.array([None] * len(stamps), _TS)
        lo, hi = pa.scalar(self._lo, _TS), pa.scalar(self._lo + timedelta(days=1), _TS)
        outside = pc.fill_null(pc.or_(pc.less(created, lo), pc.greater_equal(created, hi)), True)
        if pc.any(outside).as_py():
            first = pc.index(outside, True).as_py()
            raise QualityError(f"tweet {ids[first]} created at {stamps[first]} is outside {self.day}; "
                               "the raw day holds another day's tweets: re-fetch it")
        return created

    def _first_seen(self, ids: pa.Array) -> pa.Array | None:
        """Mask of ids not seen before in the day, or None when all are new."""
        try:
            keys = ids.cast(pa.uint64()).to_pylist()  # ints: half the memory of a million strings
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            keys = ids.to_pylist()
        seen = self._seen
        before = len(seen)
        keep = [not (key in seen or seen.add(key)) for key in keys]
        kept = len(seen) - before
        if kept == len(keys):
            return None
        self.stats.duplicates += len(keys) - kept
        return pa.array(keep, pa.bool_())

    def _pseudonymize(self, ids: pa.Array) -> pa.Array:
        """Each distinct id once through the HMAC, then spread back by index."""
        encoded = ids.dictionary_encode()
        return pa.array([self.pseudo(v) for v in encoded.dictionary.to_pylist()], _S).take(encoded.indices)

    def _columns(self, tweets: pa.StructArray, users: pa.StructArray, authors: pa.StructArray,
                 created: pa.Array) -> pa.RecordBatch:
        rows = len(tweets)
        entities, metrics = pc.struct_field(tweets, "entities"), pc.struct_field(tweets, "public_metrics")
        author_metrics = pc.struct_field(authors, "public_metrics")
        hashtags = pc.struct_field(entities, "hashtags")
        mentions = pc.struct_field(entities, "mentions")
        urls = pc.struct_field(entities, "urls")
        refs = pc.struct_field(tweets, "referenced_tweets")
        ref_items = refs.flatten()
        ref_types = pc.struct_field(ref_items, "type")
        mention_ids, mention_names = (pc.struct_field(mentions.flatten(), name) for name in ("id", "username"))
        handles = _Handles(users, mention_ids, mention_names)
        if mention_ids.null_count:
            mention_ids = pc.coalesce(mention_ids, handles.ids(mention_names))
        edit_chain_id, edit_history = _edit_columns(tweets)
        columns = {
            "tweet_id": pc.struct_field(tweets, "id"),
            "created_at": created,
            "date": pa.repeat(pa.scalar(self.day, pa.date32()), rows),
            "text": self._scrub(_full_text(tweets), handles),
            "lang": pc.struct_field(tweets, "lang"),
            "source": pc.struct_field(tweets, "source"),
            "conversation_id": pc.struct_field(tweets, "conversation_id"),
            "author_id": self._pseudonymize(pc.struct_field(tweets, "author_id")),
            "author_location": pc.struct_field(authors, "location"),
            "author_followers_count": pc.struct_field(author_metrics, "followers_count"),
            "author_following_count": pc.struct_field(author_metrics, "following_count"),
            "author_tweet_count": pc.struct_field(author_metrics, "tweet_count"),
            "author_verified": pc.struct_field(authors, "verified"),
            "author_created_at": pc.struct_field(authors, "created_at").cast(_TS),
            "hashtags": _rebuild(hashtags, pc.utf8_lower(pc.struct_field(hashtags.flatten(), "tag"))),
            "mentioned_user_ids": _rebuild(mentions, self._pseudonymize(mention_ids)),
            "in_reply_to_user_id": self._pseudonymize(pc.struct_field(tweets, "in_reply_to_user_id")),
            "is_retweet": _rows_with(refs, ref_types, "retweeted", rows),
            "is_reply": _rows_with(refs, ref_types, "replied_to", rows),
            "is_quote": _rows_with(refs, ref_types, "quoted", rows),
            "referenced_tweet_ids": _rebuild(refs, pc.struct_field(ref_items, "id")),
            "retweet_count": pc.struct_field(metrics, "retweet_count"),
            "reply_count": pc.struct_field(metrics, "reply_count"),
            "like_count": pc.struct_field(metrics, "like_count"),
            "quote_count": pc.struct_field(metrics, "quote_count"),
            "impression_count": pc.struct_field(metrics, "impression_count"),
            "url_domains": self._domains(urls),
            "possibly_sensitive": pc.struct_field(tweets, "possibly_sensitive"),
            "edit_chain_id": edit_chain_id,
            "edit_history_tweet_ids": edit_history,
            "processed_at": pa.repeat(pa.scalar(self.processed_at, _TS), rows),
            "pseudonym_key_id": pa.repeat(pa.scalar(self.pseudo.key_id, _S), rows),
            "schema_version": pa.repeat(pa.scalar(SCHEMA_VERSION, pa.int32()), rows),
            "build_id": pa.repeat(pa.scalar(self.build_id, _S), rows),
        }
        return pa.RecordBatch.from_arrays([columns[name] for name in SCHEMA.names], schema=SCHEMA)

    def _scrub(self, texts: pa.Array, handles: _Handles) -> pa.Array:
        """Replace every @handle by its user's pseudonym, or a placeholder when the id is unknown.

        The texts that contain an @ go through one regex pass as a single joined string, with
        each distinct handle's replacement worked out once.
        """
        mask = pc.fill_null(pc.match_substring_regex(texts, "[@＠]"), False)
        values = texts.filter(mask).to_pylist()
        if not values:
            return texts
        if any(SEPARATOR in value for value in values):  # cannot be joined safely: one at a time
            return pc.replace_with_mask(texts, mask, pa.array([self._scrub_joined([v], handles)[0] for v in values], _S))
        return pc.replace_with_mask(texts, mask, pa.array(self._scrub_joined(values, handles), _S))

    def _scrub_joined(self, values: list[str], handles: _Handles) -> list[str]:
        # split() with the handle's group leaves the handles at the odd places.
        parts = HANDLE_RE.split(SEPARATOR.join(values))
        names = list(set(parts[1::2]))
        replacements = {name: "@" + self.pseudo(uid) if uid else UNKNOWN_HANDLE
                        for name, uid in zip(names, handles.ids(pa.array(names, _S)).to_pylist(), strict=True)}
        parts[1::2] = [replacements[name] for name in parts[1::2]]
        return "".join(parts).split(SEPARATOR)

    @staticmethod
    def _domains(urls: pa.Array) -> pa.Array:
        """Distinct lower-case hosts of the expanded URLs, sorted, per row."""
        hosts = pc.utf8_lower(pc.struct_field(pc.extract_regex(pc.struct_field(urls.flatten(), "expanded_url"), HOST_RE), "host"))
        pairs = pa.table({"row": pc.list_parent_indices(urls), "host": hosts})
        pairs = pairs.filter(pc.fill_null(pc.not_equal(pairs["host"], ""), False))
        pairs = pairs.group_by(["row", "host"]).aggregate([]).sort_by([("row", "ascending"), ("host", "ascending")])
        per_row = pairs.group_by("row").aggregate([("host", "count")])
        everyone = pa.table({"row": pa.array(range(len(urls)), pa.int64())})
        lengths = everyone.join(per_row, "row", join_type="left outer", use_threads=False).sort_by("row")["host_count"]
        offsets = pc.cumulative_sum(pc.fill_null(lengths.combine_chunks(), 0))
        offsets = pa.concat_arrays([pa.array([0], pa.int32()), offsets.cast(pa.int32())])
        return pa.ListArray.from_arrays(offsets, pairs["host"].combine_chunks())


def _violations(values: pa.Array, pattern: str) -> bool:
    return bool(pc.any(pc.invert(pc.match_substring_regex(values, pattern))).as_py())


def check_batch(batch: pa.RecordBatch, stats: CurateStats) -> None:
    """The privacy half of the quality gate, on what is about to be written."""
    pattern = PSEUDONYM_RE.pattern
    for name in PSEUDONYM_COLUMNS:
        if _violations(batch.column(name), pattern):
            raise QualityError(f"column {name} holds a value that is not a pseudonym; refusing to publish")
    if _violations(pc.drop_null(batch.column("mentioned_user_ids").flatten()), pattern):
        raise QualityError("column mentioned_user_ids holds a value that is not a pseudonym; refusing to publish")
    for name in FREE_TEXT_COLUMNS:
        column = batch.column(name)
        if name == "text":  # the only column the scrubbing wrote pseudonyms into
            column = pc.replace_substring_regex(column, SCRUBBED_RE, "")
        suspects = pc.indices_nonzero(pc.fill_null(pc.match_substring_regex(column, r"[@＠]|\d{6}"), False))
        for value in column.take(suspects).to_pylist():
            if any(handle.lower() in stats.raw_usernames for handle in HANDLE_RE.findall(value)):
                raise QualityError(f"column {name} still names a raw user handle; refusing to publish")
            if any(digits in stats.raw_user_ids for digits in DIGITS_RE.findall(value)):
                raise QualityError(f"column {name} holds a raw user id; refusing to publish")


def write_parquet(source: IO[bytes] | Iterable[bytes | dict], sink: IO[bytes] | str, curator: Curator,
                  on_batch: Callable[[CurateStats], None] = lambda stats: None) -> CurateStats:
    """Stream a raw day into Parquet row groups, gating each batch; raises QualityError on any violation."""
    with pq.ParquetWriter(sink, SCHEMA, compression="zstd") as writer:
        pending: list[pa.RecordBatch] = []
        for batch in curator.batches(source):
            check_batch(batch, curator.stats)
            pending.append(batch)
            on_batch(curator.stats)
            if sum(b.num_rows for b in pending) >= ROW_GROUP_ROWS:
                writer.write_table(pa.Table.from_batches(pending, SCHEMA), row_group_size=ROW_GROUP_ROWS)
                pending = []
        if pending:
            writer.write_table(pa.Table.from_batches(pending, SCHEMA), row_group_size=ROW_GROUP_ROWS)
    return curator.stats
