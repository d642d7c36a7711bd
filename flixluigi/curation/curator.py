"""Raw API pages -> curated rows: pure flattening and pseudonymisation.

Pages stream in and are flattened a chunk of a few thousand tweets at a time: Arrow converts
the parsed tweets and users to typed columns in C++ and does the per-row work (field picks,
joins of authors, lists, day bounds) in vectorised kernels; Python only touches what needs it
(distinct user ids to pseudonymise, values that may hold a user identity). Memory stays bounded
however large the day. Identities in free text are scrubbed and gated by the one rule of
`curation.privacy` (docs/privacy.md); `curation.gate` checks each batch before it is written.
Nothing here touches S3 or Luigi: the work hands in lines and writes the batches. The output is
deterministic: the same raw day and key give the same rows in the same order.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import IO

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from flixluigi.curation.privacy import Identities, Matcher, SharingOptions, error_identities, handles_in, query_terms
from flixluigi.curation.pseudonym import Pseudonymizer
from flixluigi.curation.schema import NOTE_FIELDS, RAW_PAGE, SCHEMA, SCHEMA_VERSION, STRING, TIMESTAMP
from flixluigi.errors import QualityError

DEFAULT_QUERY = "#FlixBus"
KEEP_ALL = SharingOptions()
HOST_RE = r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?(?P<host>[^:/?#]*)"


@dataclass
class CurateStats:
    pages: int = 0
    rows: int = 0
    duplicates: int = 0
    superseded: int = 0  # older versions of edited posts left out for the chain's newest
    other_days: int = 0  # posts of a request chain's other days on this day's pages
    partial_errors: int = 0
    # What the privacy gate needs: the rule over the day's raw identities so far, and what the day shares.
    matcher: Matcher = field(default_factory=lambda: Matcher(Identities()), repr=False)
    sharing: SharingOptions = field(default_factory=SharingOptions)

    @property
    def identities(self) -> Identities:
        return self.matcher.identities


def _rebuild(lists: pa.Array, values: pa.Array) -> pa.ListArray:
    """Lists as long as those of `lists` (null rows: empty) holding `values`, aligned with lists.flatten()."""
    lengths = pc.fill_null(pc.list_value_length(lists), 0)
    offsets = pa.concat_arrays([pa.array([0], pa.int32()), pc.cumulative_sum(lengths).cast(pa.int32())])
    return pa.ListArray.from_arrays(offsets, values)


def _rows_with(lists: pa.Array, types: pa.Array, wanted: str, rows: int) -> pa.Array:
    """Per row: does any element of `lists` have this type?"""
    parents = pc.filter(pc.list_parent_indices(lists), pc.fill_null(pc.equal(types, wanted), False))
    return pc.is_in(pa.array(range(rows), pa.int64()), value_set=parents)


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


def _pages_of(source: IO[bytes] | Iterable[bytes | dict]) -> Iterator[pa.RecordBatch]:
    return _read_stream(source) if hasattr(source, "read") else _group_pages(source)


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
        return pc.binary_join_element_wise(pages.cast(STRING), ids, ":")

    return pc.index_in(keys(tweet_pages, pc.struct_field(tweets, "author_id")),
                       value_set=keys(user_pages, pc.struct_field(users, "id")))


def _full_text(tweets: pa.StructArray) -> pa.Array:
    """A long post's full text is note_tweet.text (or note_post.text); `text` holds only its first 280 characters."""
    return pc.coalesce(*(pc.struct_field(pc.struct_field(tweets, name), "text") for name in NOTE_FIELDS),
                       pc.struct_field(tweets, "text"))


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
    return (pa.concat_arrays([ids, pa.array([c[0] for c in chains], STRING)]).take(take),
            pa.concat_arrays([single, pa.array(chains, pa.list_(STRING))]).take(take))


class SeenIds:
    """The post ids of a day so far, in about 9 bytes each where a set of ints takes 70 (a
    1,000,000-post day: 9 MB instead of 70). Ids are snowflakes: in buckets of their time
    (id >> 38, about a minute), each a sorted array of uint64; other ids in a plain set. Pages come
    in time order, so a batch touches a few buckets and is checked against those alone."""

    BUCKET_SHIFT = 38

    def __init__(self) -> None:
        self._buckets: dict[int, array[int]] = {}
        self._other: set[str] = set()

    def first_seen(self, ids: pa.Array) -> list[bool] | None:
        """Per id: is this its first time in the day (it is now seen)? None when all are."""
        try:
            keys = ids.cast(pa.uint64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return self._first_seen_other(ids.to_pylist())
        buckets = pc.shift_right(keys, self.BUCKET_SHIFT)
        known: set[int] = set()
        for bucket in pc.unique(buckets).to_pylist():
            run = set(keys.filter(pc.equal(buckets, bucket)).to_pylist())
            stored = self._buckets.get(bucket, ())
            known.update(run.intersection(stored))
            self._buckets[bucket] = array("Q", sorted(run.union(stored)))
        values = keys.to_pylist()
        if not known and len(set(values)) == len(values):
            return None
        now: set[int] = set()
        return [not (key in known or key in now or now.add(key)) for key in values]

    def _first_seen_other(self, values: list[str]) -> list[bool] | None:
        seen, before = self._other, len(self._other)
        fresh = [not (value in seen or seen.add(value)) for value in values]
        return None if len(seen) - before == len(values) else fresh


class Curator:
    """Flattens one day's pages; keeps one row per tweet id, first seen wins, and one row per edit chain.

    Of an edited post's versions the newest of the day is kept (see docs/schema.md). A version
    whose id is the largest of its chain is final and goes out at once; an older one is held back
    (few rows) until the chain's newest arrives, which replaces it, or until the stream ends, when
    the newest version held is released. So the result does not depend on the order pages arrive in.
    """

    def __init__(self, day: date, pseudonymize: Pseudonymizer, processed_at: datetime | None = None, build_id: str = "", *,
                 sharing: SharingOptions = KEEP_ALL, query: str = DEFAULT_QUERY, chained: bool = False):
        """`query` is the day's search query: its words are never scrubbed as bare usernames. `chained`:
        the day was fetched in a chain with its neighbours, whose posts its pages may hold too."""
        self.day = day
        self.chained = chained
        self.build_id = build_id
        self.pseudo = pseudonymize
        self.processed_at = processed_at or datetime.now(UTC)
        self.sharing = sharing
        self._matcher = Matcher(Identities(allow=query_terms(query)), pseudonymize)
        self.stats = CurateStats(matcher=self._matcher, sharing=sharing)
        self._seen = SeenIds()
        self._final: set[str] = set()  # chains whose newest version went out
        self._held: dict[str, tuple[int, pa.RecordBatch]] = {}  # chain -> (id, row) of its newest older version so far
        self._lo = datetime(day.year, day.month, day.day, tzinfo=UTC)
        self._learned = False

    def learn(self, source: IO[bytes] | Iterable[bytes | dict]) -> None:
        """Every identity of the whole day, before any text is scrubbed: `includes.users`, mention
        entities, user names and ids in `errors[]` and every @handle in any text of the day. A read
        of the raw day of its own: hidden users (suspended, withheld, not expanded) have no user
        object, and a bare name on page 1 may be a handle only on page 90."""
        for pages in _pages_of(source):
            self._note_identities(pages)
        self._learned = True

    def batches(self, source: IO[bytes] | Iterable[bytes | dict]) -> Iterator[pa.RecordBatch]:
        """Curated batches from a raw day: a binary stream of JSON lines (read by Arrow's JSON
        reader, no Python objects per tweet) or an iterable of pages (lines or parsed dicts).
        A list of pages is learned first; a stream is read once, so its caller calls `learn` on a
        first read of it (else each group's identities are those of the pages read so far)."""
        if not self._learned and isinstance(source, (list, tuple)):
            self.learn(source)
        produced = False
        for pages in _pages_of(source):
            batch = self._curate(pages)
            if batch.num_rows or not produced:
                produced = True
                yield batch
        if self._held:
            held = self._share_ids(pa.Table.from_batches([row for _, row in self._held.values()], SCHEMA).combine_chunks()
                                   .to_batches()[0])
            self._held.clear()
            self.stats.rows += held.num_rows
            produced = True
            yield held
        if not produced:
            yield self._curate(pa.RecordBatch.from_pylist([], schema=RAW_PAGE))

    def _curate(self, pages: pa.RecordBatch) -> pa.RecordBatch:
        first_page = self.stats.pages + 1
        self._matcher.forget()
        self.stats.pages += pages.num_rows
        self.stats.partial_errors += len(pages.column("errors").flatten())
        if not self._learned:
            self._note_identities(pages)
        data = pages.column("data")
        tweets = data.flatten()
        users_lists = pc.struct_field(pages.column("includes"), "users")
        users = users_lists.flatten()
        authors = users.take(_author_rows(tweets, pc.list_parent_indices(data), users, pc.list_parent_indices(users_lists)))
        created, inside = self._inside_day(tweets, data, first_page)
        if inside is not None:
            tweets, authors, created = tweets.filter(inside), authors.filter(inside), created.filter(inside)
        keep = self._first_seen(pc.struct_field(tweets, "id"))
        if keep is not None:
            tweets, authors, created = tweets.filter(keep), authors.filter(keep), created.filter(keep)
        batch = self._share_ids(self._newest_of_chains(self._columns(tweets, users, authors, created)))
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

    def _note_identities(self, pages: pa.RecordBatch) -> None:
        tweets = pages.column("data").flatten()
        self._note_errors(pages.column("errors"))
        self._note_users(tweets, pc.struct_field(pages.column("includes"), "users").flatten())
        texts = [pc.struct_field(tweets, "text"), *(pc.struct_field(pc.struct_field(tweets, name), "text") for name in NOTE_FIELDS)]
        handles = handles_in(pa.concat_arrays(texts))
        self.stats.identities.add_names(handles, [None] * len(handles))

    def _note_errors(self, errors: pa.Array) -> None:
        """Users of partial errors (suspended, withheld, deleted...) are raw identities: by value,
        resource_id and the names or ids their detail brackets; the tweet ids of other errors are not."""
        items = errors.flatten()
        users = items.filter(pc.fill_null(pc.equal(pc.struct_field(items, "resource_type"), "user"), False))
        values = pc.coalesce(pc.struct_field(users, "value"), pc.struct_field(users, "resource_id")).to_pylist()
        by_name = pc.fill_null(pc.match_substring(pc.struct_field(users, "parameter"), "username"), False).to_pylist()
        names, ids = error_identities(pc.struct_field(users, "detail").to_pylist())
        names += [v for v, name in zip(values, by_name, strict=True) if name]
        known = self.stats.identities
        known.add_names(names, [None] * len(names))
        known.add_ids([*ids, *(v for v, name in zip(values, by_name, strict=True) if not name)])

    def _note_users(self, tweets: pa.StructArray, users: pa.StructArray) -> None:
        """Every raw user id, username and display name of the day, for the scrubber and the gate."""
        known = self.stats.identities
        user_ids = pc.struct_field(users, "id")
        unread = [uid for uid in pc.unique(user_ids).to_pylist() if not known.ids.get(uid, False)]
        if unread:  # each user object is read once a day
            new_users = users.filter(pc.is_in(user_ids, value_set=pa.array(unread, STRING)))
            known.add_users(*(pc.struct_field(new_users, name).to_pylist() for name in ("id", "username", "name")))
        entities = [pc.struct_field(tweets, "entities"), *(pc.struct_field(pc.struct_field(tweets, name), "entities")
                                                           for name in NOTE_FIELDS)]
        mentions = pa.concat_arrays([pc.struct_field(e, "mentions").flatten() for e in entities])
        pairs = pa.table({"username": pc.struct_field(mentions, "username"), "id": pc.struct_field(mentions, "id")})
        pairs = pairs.group_by(["username", "id"], use_threads=False).aggregate([])
        known.add_names(pairs["username"].to_pylist(), pairs["id"].to_pylist())
        for ids in (pairs["id"], pc.struct_field(tweets, "author_id"), pc.struct_field(tweets, "in_reply_to_user_id")):
            known.add_ids(pc.unique(ids).to_pylist())

    def _inside_day(self, tweets: pa.StructArray, data: pa.ListArray, first_page: int) -> tuple[pa.Array, pa.Array | None]:
        """The posts' times, and which are the day's when a chained fetch's pages hold other days' too."""
        ids, stamps = pc.struct_field(tweets, "id"), pc.struct_field(tweets, "created_at")
        if ids.null_count:
            first = pc.index(pc.is_null(ids), True).as_py()
            page = first_page + pc.list_parent_indices(data)[first].as_py()
            raise QualityError(f"a tweet without id on raw page {page}; the raw day is corrupt: re-fetch it")
        try:
            created = stamps.cast(TIMESTAMP)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            created = pa.array([None] * len(stamps), TIMESTAMP)
        lo, hi = pa.scalar(self._lo, TIMESTAMP), pa.scalar(self._lo + timedelta(days=1), TIMESTAMP)
        outside = pc.fill_null(pc.or_(pc.less(created, lo), pc.greater_equal(created, hi)), True)
        if self.chained and pc.any(outside).as_py() and not created.null_count:
            self.stats.other_days += pc.sum(outside).as_py()  # a chain's page: its other days' posts are theirs
            return created, pc.invert(outside)
        if pc.any(outside).as_py():
            first = pc.index(outside, True).as_py()
            raise QualityError(f"tweet {ids[first]} created at {stamps[first]} is outside {self.day}; "
                               "the raw day holds another day's tweets: re-fetch it")
        return created, None

    def _first_seen(self, ids: pa.Array) -> pa.Array | None:
        """Mask of ids not seen before in the day, or None when all are new."""
        keep = self._seen.first_seen(ids)
        if keep is None:
            return None
        self.stats.duplicates += len(keep) - sum(keep)
        return pa.array(keep, pa.bool_())

    def _pseudonymize(self, ids: pa.Array, tweets: bool = False) -> pa.Array:
        """Each distinct id once through the HMAC, then spread back by index; tweet ids in their own domain."""
        encoded = ids.dictionary_encode()
        pseudonym = self.pseudo.tweet if tweets else self.pseudo
        return pa.array([pseudonym(v) for v in encoded.dictionary.to_pylist()], STRING).take(encoded.indices)

    def _share_ids(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """With [sharing] tweet_ids = pseudonymise, the post and edit-chain ids too (after the chains are
        resolved, which compares raw ids)."""
        if self.sharing.tweet_ids != "pseudonymise":
            return batch
        history = batch.column("edit_history_tweet_ids")
        shared = {"tweet_id": self._tweet_ids(batch.column("tweet_id")), "edit_chain_id": self._tweet_ids(batch.column("edit_chain_id")),
                  "edit_history_tweet_ids": _rebuild(history, self._tweet_ids(history.flatten()))}
        return pa.RecordBatch.from_arrays([shared.get(name, batch.column(name)) for name in SCHEMA.names], schema=SCHEMA)

    def _tweet_ids(self, ids: pa.Array) -> pa.Array:
        return self._pseudonymize(ids, tweets=True) if self.sharing.tweet_ids == "pseudonymise" else ids

    def _shared(self, option: str, values: pa.Array) -> pa.Array:
        """A free-text column scrubbed, or all null when the sharing options drop it."""
        return pa.nulls(len(values), STRING) if getattr(self.sharing, option) == "drop" else self._matcher.scrub(values)

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
        if mention_ids.null_count:
            known = self.stats.identities
            mention_ids = pc.coalesce(mention_ids, pa.array([known.user_id(n) if n else None
                                                             for n in mention_names.to_pylist()], STRING))
        edit_chain_id, edit_history = _edit_columns(tweets)
        scrub = self._matcher.scrub
        columns = {
            "tweet_id": pc.struct_field(tweets, "id"),  # pseudonymised, if asked, once edit chains are resolved
            "created_at": created,
            "date": pa.repeat(pa.scalar(self.day, pa.date32()), rows),
            "text": self._shared("text", _full_text(tweets)),  # a long post in full
            "lang": pc.struct_field(tweets, "lang"),
            "source": scrub(pc.struct_field(tweets, "source")),
            "conversation_id": self._tweet_ids(pc.struct_field(tweets, "conversation_id")),
            "author_id": self._pseudonymize(pc.struct_field(tweets, "author_id")),
            "author_location": self._shared("author_location", pc.struct_field(authors, "location")),
            "author_followers_count": pc.struct_field(author_metrics, "followers_count"),
            "author_following_count": pc.struct_field(author_metrics, "following_count"),
            "author_tweet_count": pc.struct_field(author_metrics, "tweet_count"),
            "author_verified": pc.struct_field(authors, "verified"),
            "author_created_at": pc.struct_field(authors, "created_at").cast(TIMESTAMP),
            "hashtags": _rebuild(hashtags, scrub(pc.utf8_lower(pc.struct_field(hashtags.flatten(), "tag")))),
            "mentioned_user_ids": _rebuild(mentions, self._pseudonymize(mention_ids)),
            "in_reply_to_user_id": self._pseudonymize(pc.struct_field(tweets, "in_reply_to_user_id")),
            "is_retweet": _rows_with(refs, ref_types, "retweeted", rows),
            "is_reply": _rows_with(refs, ref_types, "replied_to", rows),
            "is_quote": _rows_with(refs, ref_types, "quoted", rows),
            "referenced_tweet_ids": _rebuild(refs, self._tweet_ids(pc.struct_field(ref_items, "id"))),
            "retweet_count": pc.struct_field(metrics, "retweet_count"),
            "reply_count": pc.struct_field(metrics, "reply_count"),
            "like_count": pc.struct_field(metrics, "like_count"),
            "quote_count": pc.struct_field(metrics, "quote_count"),
            "impression_count": pc.struct_field(metrics, "impression_count"),
            "url_domains": self._domains(urls, scrub),
            "possibly_sensitive": pc.struct_field(tweets, "possibly_sensitive"),
            "edit_chain_id": edit_chain_id,
            "edit_history_tweet_ids": edit_history,
            "processed_at": pa.repeat(pa.scalar(self.processed_at, TIMESTAMP), rows),
            "pseudonym_key_id": pa.repeat(pa.scalar(self.pseudo.key_id, STRING), rows),
            "schema_version": pa.repeat(pa.scalar(SCHEMA_VERSION, pa.int32()), rows),
            "build_id": pa.repeat(pa.scalar(self.build_id, STRING), rows),
        }
        return pa.RecordBatch.from_arrays([columns[name] for name in SCHEMA.names], schema=SCHEMA)

    @staticmethod
    def _domains(urls: pa.Array, scrub: Callable[[pa.Array], pa.Array]) -> pa.Array:
        """Distinct lower-case hosts of the expanded URLs (scrubbed: `alice.example` names a user), sorted, per row."""
        hosts = scrub(pc.utf8_lower(pc.struct_field(pc.extract_regex(pc.struct_field(urls.flatten(), "expanded_url"),
                                                                       HOST_RE), "host")))
        pairs = pa.table({"row": pc.list_parent_indices(urls), "host": hosts})
        pairs = pairs.filter(pc.fill_null(pc.not_equal(pairs["host"], ""), False))
        pairs = pairs.group_by(["row", "host"], use_threads=False).aggregate([]).sort_by([("row", "ascending"), ("host", "ascending")])
        per_row = pairs.group_by("row", use_threads=False).aggregate([("host", "count")])
        everyone = pa.table({"row": pa.array(range(len(urls)), pa.int64())})
        lengths = everyone.join(per_row, "row", join_type="left outer", use_threads=False).sort_by("row")["host_count"]
        offsets = pc.cumulative_sum(pc.fill_null(lengths.combine_chunks(), 0))
        offsets = pa.concat_arrays([pa.array([0], pa.int32()), offsets.cast(pa.int32())])
        return pa.ListArray.from_arrays(offsets, pairs["host"].combine_chunks())
