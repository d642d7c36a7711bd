"""Applying batch compliance results to stored data: pure functions, no I/O.

X's terms require stored posts that were deleted, protected, suspended or withheld to be removed
(and geo scrubbed) once known. The results of a compliance job say so per id; this module turns
them into `Verdicts` and applies those to raw API pages; the curated day is then rebuilt from
the new raw fetch like any other (`compliance.apply`).

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
  Curated rows of such users, rebuilt from the new fetch, lose every `author_*` column but the
  pseudonymous `author_id`.
- Posts of other users that mention or quote a removed post or user are their authors' content
  and stay as they are; `errors` stays; `meta.result_count`, `newest_id` and `oldest_id` are
  recomputed for the posts that remain, since they would otherwise name removed posts.
- Every other key of a page (`__flixluigi`, `__twarc`, `meta.next_token`, ...) is kept unchanged,
  and a page without affected ids is returned as the very same object (as raw lines: the same
  bytes), so a day without affected posts is detected as unchanged and need not be rewritten.
  Applying the same verdicts again changes nothing.

Removed ids are remembered only as keyed hashes (`Ledger`), never as raw ids: what was removed
stays known (and a version older than the removal is refused by restore) without the ledger
holding the identifiers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

import orjson

from flixluigi.curation.pseudonym import Pseudonymizer
from flixluigi.errors import ComplianceDataError
from flixluigi.xapi.compliance import SCRUB_GEO, Record

TWEET, USER = "tweet", "user"
LEDGER_DOMAIN = b"ledger:"


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


def apply_lines(lines: Iterable[bytes], verdicts: Verdicts, summary: Summary) -> Iterator[bytes]:
    """Raw JSON lines in, JSON lines out: unaffected lines are yielded as the same bytes."""
    for line in lines:
        if not line.strip():
            continue
        page = orjson.loads(line)
        new = apply_page(page, verdicts, summary)
        yield line if new is page else orjson.dumps(new) + (b"\n" if line.endswith(b"\n") else b"")


class Ledger:
    """Removed and scrubbed ids as keyed hashes, so they stay known without being stored.

    An entry is `{"kind": "tweet"|"user", "hash": "<key_id>:<hmac>", "reason": ..., "day": "YYYY-MM-DD",
    "at": ISO time}`; the hash is the pseudonym HMAC under its own domain (`ledger:tweet:<id>`),
    so it never equals a curated pseudonym and cannot be reversed without the key. User entries
    also carry the user's curated `pseudonym` (already in the curated table, never a raw id):
    curated rows name authors only by pseudonym, so that is how they are found there.
    Record the summary of applying job results to raw pages (it holds raw ids).
    """

    def __init__(self, key: bytes, entries: Iterable[dict] = ()):
        self._hash = {kind: Pseudonymizer(key, domain=LEDGER_DOMAIN + kind.encode() + b":") for kind in (TWEET, USER)}
        self._pseudonym = Pseudonymizer(key)
        self.key_id = self._hash[TWEET].key_id
        self.entries: list[dict] = []
        self._known: dict[tuple[str, str], str] = {}
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

    def _remember(self, entry: dict) -> None:
        if entry.get("kind") not in (TWEET, USER) or not isinstance(entry.get("hash"), str):
            raise ComplianceDataError(f"ledger entry {str(entry)[:120]!r} lacks kind or hash; the ledger object is corrupt")
        if not entry["hash"].startswith(self.key_id + ":"):
            raise ComplianceDataError(f"ledger entry hashed with another key than {self.key_id}; "
                                      "use the HMAC key the ledger was written with")
        previous = self._known.get((entry["kind"], entry["hash"]))
        if previous is None or previous == SCRUB_GEO:  # a removal supersedes a scrub
            self._known[(entry["kind"], entry["hash"])] = entry["reason"]
        self.entries.append(entry)
