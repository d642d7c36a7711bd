"""Applying batch compliance results to stored data: pure functions, no I/O.

X's terms require stored posts that were deleted, protected, suspended or withheld to be removed
(and geo scrubbed) once known. The results of a compliance job say so per id; this module turns
them into `Verdicts` and applies those to raw API pages and to curated Arrow rows.

What is changed, and why nothing else is:
- Posts whose result has any reason but `scrub_geo` (deleted, protected, suspended, deactivated,
  withheld, bounced, and any reason X adds later: removal is the safe default) leave `data` and
  `includes.tweets`; so do the `includes.media`, `includes.polls` and `includes.places` that only
  removed posts referenced (they are those posts' content).
- `scrub_geo` removes a post's `geo` field, and the places that only scrubbed or removed posts
  referenced.
- Users with any reason but `scrub_geo` (users job) keep only `{"id": ...}` in `includes.users`:
  name, username, description, location, url, profile image, entities, pinned post, metrics,
  verified/protected flags, creation date and withholding all go. The id stays because the page
  already names it wherever the user appears (author_id, mentions), so removing it would hide
  nothing and would break the joins of the curation. A user's `scrub_geo` removes `location`.
  Curated rows of such users lose every `author_*` column but the pseudonymous `author_id`.
- Posts of other users that mention or quote a removed post or user are their authors' content
  and stay as they are; `errors` stays; `meta.result_count`, `newest_id` and `oldest_id` are
  recomputed for the posts that remain, since they would otherwise name removed posts.
- Every other key of a page (`__flixluigi`, `__twarc`, `meta.next_token`, ...) is kept unchanged,
  and a page without affected ids is returned as the very same object (as raw lines: the same
  bytes), so a day without affected posts is detected as unchanged and need not be rewritten.
  Applying the same verdicts again changes nothing.

Removed ids are remembered only as keyed hashes (`Ledger`), never as raw ids, so a restore of
an older version can re-apply them without the ledger itself holding the identifiers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from flixluigi.pseudonym import Pseudonymizer, is_pseudonym

SCRUB_GEO = "scrub_geo"
TWEET, USER = "tweet", "user"
LEDGER_DOMAIN = b"ledger:"
# Curated columns that hold post geo: none today (curation reads no geo), any added later is cleared.
GEO_PREFIX = "geo"
KEPT_AUTHOR_COLUMNS = ("author_id",)


class ComplianceDataError(ValueError):
    """Results or data that cannot be applied; the message is one line with the fix."""


@dataclass(frozen=True)
class Record:
    """One line of a job's results: `{"id", "action", "created_at", "redacted_at", "reason"}`."""

    id: str
    reason: str
    action: str = "delete"
    created_at: str | None = None
    redacted_at: str | None = None

    @classmethod
    def parse(cls, obj: object) -> Record:
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not isinstance(obj.get("reason"), str):
            raise ComplianceDataError(f"compliance result {str(obj)[:120]!r} lacks a string id or reason; "
                                      "the download is not a compliance result file")
        return cls(obj["id"], obj["reason"], str(obj.get("action") or "delete"), obj.get("created_at"), obj.get("redacted_at"))

    @property
    def scrubs_geo(self) -> bool:
        return SCRUB_GEO in (self.reason, self.action)


@dataclass(frozen=True)
class Verdicts:
    """What the results demand, by id: posts to remove or scrub, users to redact or scrub."""

    remove_tweets: Mapping[str, str] = field(default_factory=dict)  # post id -> reason
    scrub_tweets: frozenset[str] = frozenset()
    redact_users: Mapping[str, str] = field(default_factory=dict)   # user id -> reason
    scrub_users: frozenset[str] = frozenset()

    @classmethod
    def from_records(cls, tweets: Iterable[Record] = (), users: Iterable[Record] = ()) -> Verdicts:
        """Removal wins over scrubbing when an id has both results."""
        remove, scrub = _split(tweets)
        redact, scrub_users = _split(users)
        return cls(remove, frozenset(scrub - remove.keys()), redact, frozenset(scrub_users - redact.keys()))

    def __bool__(self) -> bool:
        return bool(self.remove_tweets or self.scrub_tweets or self.redact_users or self.scrub_users)


def _split(records: Iterable[Record]) -> tuple[dict[str, str], set[str]]:
    remove: dict[str, str] = {}
    scrub: set[str] = set()
    for record in records:
        if record.scrubs_geo:
            scrub.add(record.id)
        else:
            remove[record.id] = record.reason
    return remove, scrub


@dataclass
class Summary:
    """What an application changed: affected ids with their reason (in memory only) and counts."""

    tweets: dict[str, str] = field(default_factory=dict)  # post id -> reason (removed, or scrub_geo)
    users: dict[str, str] = field(default_factory=dict)   # user id -> reason (redacted, or scrub_geo)
    rows: Counter[str] = field(default_factory=Counter)   # curated rows: "removed" / "scrubbed" / "authors_redacted"

    @property
    def changed(self) -> bool:
        return bool(self.tweets or self.users or self.rows)

    def counts(self) -> dict[str, dict[str, int]]:
        """Per kind, how many distinct ids per reason: what a compliance state object records."""
        return {"tweets": dict(Counter(self.tweets.values())), "users": dict(Counter(self.users.values())),
                "rows": dict(self.rows)}


def ids_to_check(pages: Iterable[dict]) -> tuple[set[str], set[str]]:
    """The post ids (data and includes.tweets) and user ids (includes.users) a day stores."""
    tweets: set[str] = set()
    users: set[str] = set()
    for page in pages:
        includes = page.get("includes") or {}
        tweets.update(t["id"] for t in (*page.get("data", ()), *includes.get("tweets", ())))
        users.update(u["id"] for u in includes.get("users", ()))
    return tweets, users


def apply_page(page: dict, verdicts: Verdicts, summary: Summary) -> dict:
    """The page without what the verdicts remove; the same object when nothing in it is affected."""
    includes = page.get("includes") or {}
    tweets = [*page.get("data", ()), *includes.get("tweets", ())]
    touched = [t for t in tweets if (t["id"] in verdicts.remove_tweets or (t["id"] in verdicts.scrub_tweets and "geo" in t))]
    users = [u for u in includes.get("users", ()) if _user_change(u, verdicts)]
    if not touched and not users:
        return page
    for tweet in touched:
        summary.tweets[tweet["id"]] = verdicts.remove_tweets.get(tweet["id"], SCRUB_GEO)
    for user in users:
        summary.users[user["id"]] = verdicts.redact_users.get(user["id"], SCRUB_GEO)
    new = dict(page)
    if touched:
        data = _tweets(page.get("data", ()), verdicts)
        if "data" in page:
            new["data"] = data
        if isinstance(page.get("meta"), dict):
            new["meta"] = _meta(page["meta"], data)
    new_includes = dict(includes)
    if "tweets" in includes:
        new_includes["tweets"] = _tweets(includes["tweets"], verdicts)
    if "users" in includes:
        new_includes["users"] = [_user(u, verdicts) for u in includes["users"]]
    if touched:
        _prune_attachments(new_includes, tweets, [*new.get("data", ()), *new_includes.get("tweets", ())])
    if "includes" in page:
        new["includes"] = new_includes
    return new


def _tweets(tweets: Iterable[dict], verdicts: Verdicts) -> list[dict]:
    kept = []
    for tweet in tweets:
        if tweet["id"] in verdicts.remove_tweets:
            continue
        if tweet["id"] in verdicts.scrub_tweets and "geo" in tweet:
            tweet = {k: v for k, v in tweet.items() if k != "geo"}
        kept.append(tweet)
    return kept


def _meta(meta: dict, data: list[dict]) -> dict:
    """The counts and bounds of the posts that remain; the rest of meta (next_token) unchanged."""
    new = dict(meta)
    if "result_count" in meta:
        new["result_count"] = len(data)
    for key, index in (("newest_id", 0), ("oldest_id", -1)):
        if key in meta and data:
            new[key] = data[index]["id"]
        else:
            new.pop(key, None)
    return new


def _user_change(user: dict, verdicts: Verdicts) -> bool:
    if user["id"] in verdicts.redact_users:
        return user.keys() != {"id"}
    return user["id"] in verdicts.scrub_users and "location" in user


def _user(user: dict, verdicts: Verdicts) -> dict:
    if user["id"] in verdicts.redact_users:
        return {"id": user["id"]}
    if user["id"] in verdicts.scrub_users:
        return {k: v for k, v in user.items() if k != "location"}
    return user


def _prune_attachments(includes: dict, before: list[dict], after: list[dict]) -> None:
    """Drop media, polls and places that the removed or scrubbed posts were the only ones to reference."""
    for name, key, refs in (("media", "media_key", _media_keys), ("polls", "id", _poll_ids), ("places", "id", _place_ids)):
        if name not in includes:
            continue
        gone = {r for t in before for r in refs(t)} - {r for t in after for r in refs(t)}
        if gone:
            includes[name] = [item for item in includes[name] if item.get(key) not in gone]


def _media_keys(tweet: dict) -> list[str]:
    return (tweet.get("attachments") or {}).get("media_keys", [])


def _poll_ids(tweet: dict) -> list[str]:
    return (tweet.get("attachments") or {}).get("poll_ids", [])


def _place_ids(tweet: dict) -> list[str]:
    place = (tweet.get("geo") or {}).get("place_id")
    return [place] if place else []


def apply_pages(pages: Iterable[dict], verdicts: Verdicts) -> tuple[list[dict], Summary]:
    summary = Summary()
    return [apply_page(page, verdicts, summary) for page in pages], summary


def apply_lines(lines: Iterable[bytes], verdicts: Verdicts, summary: Summary) -> Iterator[bytes]:
    """Raw JSON lines in, JSON lines out: unaffected lines are yielded as the same bytes."""
    for line in lines:
        if not line.strip():
            continue
        page = orjson.loads(line)
        new = apply_page(page, verdicts, summary)
        yield line if new is page else orjson.dumps(new) + (b"\n" if line.endswith(b"\n") else b"")


def apply_table(table: pa.Table | pa.RecordBatch, verdicts: Verdicts,
                pseudonymize: Callable[[str], str | None] | None = None) -> tuple[pa.Table | pa.RecordBatch, Summary]:
    """Curated rows without removed posts, with geo and redacted authors' profile columns cleared.

    Curated rows name authors by pseudonym, so user verdicts keyed by raw user id need the
    `Pseudonymizer` of the key the rows were written with (their `pseudonym_key_id`); verdicts
    keyed by pseudonym (`Ledger.row_verdicts`) match as they are.
    """
    summary = Summary()
    if not verdicts:
        return table, summary
    ids = table.column("tweet_id")
    if verdicts.remove_tweets:
        removed = pc.is_in(ids, value_set=pa.array(list(verdicts.remove_tweets), pa.string()))
        for tweet_id in pc.filter(ids, removed).to_pylist():
            summary.tweets[tweet_id] = verdicts.remove_tweets[tweet_id]
        before = table.num_rows
        table = table.filter(pc.invert(pc.fill_null(removed, False)))
        summary.rows["removed"] = before - table.num_rows
        ids = table.column("tweet_id")
    geo = [name for name in table.schema.names if name.startswith(GEO_PREFIX)]
    if verdicts.scrub_tweets and geo:
        scrub = pc.fill_null(pc.is_in(ids, value_set=pa.array(list(verdicts.scrub_tweets), pa.string())), False)
        carrying = pc.and_(scrub, _any_valid(table, geo))
        for tweet_id in pc.filter(ids, carrying).to_pylist():
            summary.tweets[tweet_id] = SCRUB_GEO
        summary.rows["scrubbed"] = pc.sum(carrying).as_py() or 0
        table = _null_where(table, geo, carrying)
    if verdicts.redact_users or verdicts.scrub_users:
        table = _apply_authors(table, verdicts, pseudonymize, summary)
    summary.rows = +summary.rows
    return table, summary


def _apply_authors(table: pa.Table | pa.RecordBatch, verdicts: Verdicts, pseudonymize: Callable[[str], str | None] | None,
                   summary: Summary) -> pa.Table | pa.RecordBatch:
    by_id = [u for u in (*verdicts.redact_users, *verdicts.scrub_users) if not is_pseudonym(u)]
    if by_id and pseudonymize is None:
        raise ComplianceDataError("user verdicts by user id need the Pseudonymizer of the curated rows' key; pass pseudonymize=")
    pseudonyms = {u: u for u in (*verdicts.redact_users, *verdicts.scrub_users)}
    if pseudonymize is not None:
        pseudonyms.update((u, pseudonymize(u) or "") for u in by_id)
    expected = {p.split(":")[0] for p in pseudonyms.values()}
    if "pseudonym_key_id" in table.schema.names and table.num_rows:
        keys = set(pc.unique(table.column("pseudonym_key_id")).to_pylist())
        if keys - expected:
            raise ComplianceDataError(f"curated rows were pseudonymised with {sorted(keys - expected)}, not {sorted(expected)}; "
                                      "reprocess the days with the current key before applying user verdicts")
    profile = [n for n in table.schema.names if n.startswith("author_") and n not in KEPT_AUTHOR_COLUMNS]
    for group, columns, label in ((verdicts.redact_users, profile, "authors_redacted"),
                                  (verdicts.scrub_users, [n for n in profile if n == "author_location"], "authors_scrubbed")):
        if not group or not columns:
            continue
        by_pseudonym = {pseudonyms[u]: u for u in group}
        hit = pc.fill_null(pc.is_in(table.column("author_id"), value_set=pa.array(list(by_pseudonym), pa.string())), False)
        carrying = pc.and_(hit, _any_valid(table, columns))
        found = pc.unique(pc.filter(table.column("author_id"), carrying)).to_pylist()
        for pseudonym in found:
            user = by_pseudonym[pseudonym]
            summary.users[user] = verdicts.redact_users.get(user, SCRUB_GEO)
        summary.rows[label] = pc.sum(carrying).as_py() or 0
        table = _null_where(table, columns, carrying)
    return table


def _any_valid(table: pa.Table | pa.RecordBatch, columns: list[str]) -> pa.Array:
    valid = pc.is_valid(table.column(columns[0]))
    for name in columns[1:]:
        valid = pc.or_(valid, pc.is_valid(table.column(name)))
    return valid


def _null_where(table: pa.Table | pa.RecordBatch, columns: list[str], mask: pa.Array) -> pa.Table | pa.RecordBatch:
    if not pc.any(mask).as_py():
        return table
    for name in columns:
        index = table.schema.get_field_index(name)
        column = table.column(index)
        table = table.set_column(index, table.schema.field(index), pc.if_else(mask, pa.scalar(None, column.type), column))
    return table


class Ledger:
    """Removed and scrubbed ids as keyed hashes, so they can be re-applied without being stored.

    An entry is `{"kind": "tweet"|"user", "hash": "<key_id>:<hmac>", "reason": ..., "day": "YYYY-MM-DD",
    "at": ISO time}`; the hash is the pseudonym HMAC under its own domain (`ledger:tweet:<id>`),
    so it never equals a curated pseudonym and cannot be reversed without the key. User entries
    also carry the user's curated `pseudonym` (already in the curated table, never a raw id):
    curated rows name authors only by pseudonym, so that is how a restore finds them again.
    Record the summary of applying job results to raw pages (it holds raw ids).
    """

    def __init__(self, key: bytes, entries: Iterable[dict] = ()):
        self._hash = {kind: Pseudonymizer(key, domain=LEDGER_DOMAIN + kind.encode() + b":") for kind in (TWEET, USER)}
        self._pseudonym = Pseudonymizer(key)
        self.key_id = self._hash[TWEET].key_id
        self.entries: list[dict] = []
        self._known: dict[tuple[str, str], str] = {}
        self._authors: dict[str, str] = {}  # curated pseudonym -> reason
        for entry in entries:
            self._remember(entry)

    def hash(self, kind: str, value: str) -> str:
        return self._hash[kind](value) or ""

    def record(self, summary: Summary, day: date, at: datetime) -> list[dict]:
        """The new entries for what `summary` changed on `day` (ids already listed are skipped)."""
        added = []
        for kind, ids in ((TWEET, summary.tweets), (USER, summary.users)):
            for value, reason in sorted(ids.items()):
                entry = {"kind": kind, "hash": self.hash(kind, value), "reason": reason, "day": day.isoformat(),
                         "at": at.isoformat()}
                if kind == USER:
                    entry["pseudonym"] = self._pseudonym(value)
                known = self._known.get((kind, entry["hash"]))
                if known is None or (known == SCRUB_GEO and reason != SCRUB_GEO):
                    self._remember(entry)
                    added.append(entry)
        return added

    def verdicts(self, tweet_ids: Iterable[str] = (), user_ids: Iterable[str] = ()) -> Verdicts:
        """Re-applicable verdicts for the ids of older data (a restored version, an old raw fetch)."""
        records = {kind: [Record(v, reason) for v in ids if (reason := self._known.get((kind, self.hash(kind, v))))]
                   for kind, ids in ((TWEET, tweet_ids), (USER, user_ids))}
        return Verdicts.from_records(records[TWEET], records[USER])

    def row_verdicts(self, tweet_ids: Iterable[str]) -> Verdicts:
        """Verdicts for curated rows: posts by id, authors by their pseudonym (for `apply_table`)."""
        tweets = self.verdicts(tweet_ids)
        users = Verdicts.from_records(users=[Record(p, reason) for p, reason in self._authors.items()])
        return Verdicts(tweets.remove_tweets, tweets.scrub_tweets, users.redact_users, users.scrub_users)

    def _remember(self, entry: dict) -> None:
        if entry.get("kind") not in (TWEET, USER) or not isinstance(entry.get("hash"), str):
            raise ComplianceDataError(f"ledger entry {str(entry)[:120]!r} lacks kind or hash; the ledger object is corrupt")
        if not entry["hash"].startswith(self.key_id + ":"):
            raise ComplianceDataError(f"ledger entry hashed with another key than {self.key_id}; "
                                      "use the HMAC key the ledger was written with")
        previous = self._known.get((entry["kind"], entry["hash"]))
        if previous is None or previous == SCRUB_GEO:  # a removal supersedes a scrub
            self._known[(entry["kind"], entry["hash"])] = entry["reason"]
            if entry["kind"] == USER and isinstance(entry.get("pseudonym"), str):
                self._authors[entry["pseudonym"]] = entry["reason"]
        self.entries.append(entry)
