"""What an X API answer must be before anything is built on it: pure checks, no I/O.

Every new page is checked where it enters (the client), before it is stored or paged past,
so a hostile or broken answer fails the day at once with one line naming what arrived, instead
of becoming the day's current fetch and failing curation on every later run. The line between
what a retry can mend and what it cannot is drawn here too: a body cut short is transient
(`TransientFault`); HTML, a bad escape, a wrong shape or bad values are permanent
(`MalformedResponse`): the API would send them again. Stored fetches are not re-checked.

`PageGuard` stops paging that does not end (a token seen before, pages adding no new post, far
more pages than the day's expected posts), for search and counts alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING

import orjson

from flixluigi.errors import MalformedResponse, TransientFault

if TYPE_CHECKING:
    from flixluigi.xapi.client import Window

# Post and user ids are decimal snowflakes, as strings (the API never sends them as numbers in v2).
ID_RE = re.compile(r"[0-9]{1,20}\Z")
# RFC 3339 as the API writes it: 2022-09-12T08:15:00.000Z.
STAMP_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?Z\Z")
# On every post, whatever was asked.
REQUIRED = ("id", "text")
# On every post when asked for in tweet.fields (the day's fetch always asks).
REQUIRED_IF_ASKED = ("author_id", "created_at")
# Where the API has them (posts since edit metadata began; recorded older pages have none): on
# every post of a page if on one, and always a non-empty list of id strings.
EDIT_IDS = "edit_history_tweet_ids"
# Per post, never required: a short post has no note (`note_tweet`, or `note_post` in X's newer
# naming), a post may have no place or media, and X may stop returning `source`.
OPTIONAL = ("geo", "attachments", "note_tweet", "note_post", "source", "entities", "in_reply_to_user_id",
            "referenced_tweets", "possibly_sensitive", "context_annotations", "reply_settings")
# Asked-for fields curation reads that at least one post of the first page with posts must carry:
# a field name the API does not know may be dropped silently while the posts are still billed.
FIRST_PAGE_FIELDS = ("author_id", "created_at", "conversation_id", "lang", "public_metrics")
# Id-valued fields of a post besides `id` itself.
ID_FIELDS = ("author_id", "in_reply_to_user_id", "conversation_id")
# orjson's reason when the input ends inside the value (wherever it reports the position).
CUT_SHORT = "unexpected end of data"


def decode(content: bytes, content_type: str, where: str) -> object:
    """The answer's JSON; a body that is not JSON raises naming what arrived instead.

    Cut short (the parser ran out of input): `TransientFault`, a retry mends it. Anything else
    (HTML, a bad escape, bytes after the value): `MalformedResponse`, the API would send it again.
    """
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        problem = _not_json(content, content_type, exc)
    if problem is None:
        raise TransientFault(f"incomplete JSON body from {where} ({len(content)} bytes, cut short)") from None
    raise MalformedResponse(f"{where}: {problem}") from None


def _not_json(content: bytes, content_type: str, exc: orjson.JSONDecodeError) -> str | None:
    """What the body is instead of JSON, or None when it is JSON cut short."""
    kind = content_type.split(";")[0].strip().lower()
    head = content.lstrip()[:1]
    if "html" in kind or head == b"<":
        return (f"the API answered {kind if 'html' in kind else 'HTML'}, not JSON: a proxy, or a wrong [xapi] base_url? "
                f"(starts {content.lstrip()[:40].decode('utf-8', 'replace')!r})")
    if not content.strip():
        return "the API answered an empty body, not JSON: a proxy, or a wrong [xapi] base_url?"
    if exc.msg == CUT_SHORT:
        return None
    escape = _bad_escape(content, exc.pos)
    if escape:
        return (f"the API's JSON holds a bad escape {escape[1]} at offset {escape[0]} ({exc.msg}); "
                "the same request gets the same body: report it to X, the day cannot be read")
    return f"the API answered invalid JSON at offset {exc.pos} ({exc.msg}); is [xapi] base_url an X API?"


# How far past the start of the failing string a bad escape is looked for (orjson reports the string's start).
_STRING_SPAN = 1 << 16
_ESCAPE_RE = re.compile(rb"\\u[0-9A-Fa-f]{4}(?:\\u[0-9A-Fa-f]{4})?|\\.")


def _bad_escape(content: bytes, pos: int) -> tuple[int, str] | None:
    """The first bad backslash escape in the string the parser stopped in (offset, text), if any."""
    for match in _ESCAPE_RE.finditer(content, pos, pos + _STRING_SPAN):
        text = match.group().decode("ascii", "replace")
        if len(text) == 2 and text[1] in '"\\/bfnrtu':
            continue
        if text.startswith("\\u"):
            units = [int(unit, 16) for unit in text[2:].split("\\u")]
            paired = len(units) == 2 and 0xD800 <= units[0] < 0xDC00 <= units[1] < 0xE000
            if paired or not any(0xD800 <= unit < 0xE000 for unit in units):
                continue
            text = text[:6]
        return match.start(), text
    return None


def validate_page(body: object, window: Window | None, *, fields: Iterable[str] = (), first: bool = False,
                  where: str = "search") -> list[str]:
    """The ids of a search page's posts, once the page is known good; raises `MalformedResponse` naming the fault.

    `window`: the fetch's [start, end), which every `created_at` must be in (None: not checked).
    `fields`: the tweet.fields asked for. `first`: the first page with posts of a fetch, where the
    asked-for fields curation reads must show up (on at least one post).
    """
    if not isinstance(body, dict):
        raise MalformedResponse(f"{where} answered JSON that is not an object; is [xapi] base_url an X API?")
    meta, data = body.get("meta"), body.get("data", [])
    if not isinstance(meta, dict) or not isinstance(data, list):
        raise MalformedResponse(f"{where} answered a page without meta/data lists; is [xapi] base_url an X API?")
    count = meta.get("result_count")
    if count is not None and (not isinstance(count, int) or count != len(data)):
        raise MalformedResponse(f"{where} answered a page whose meta.result_count is {count!r} but which holds "
                                f"{len(data)} posts; the page is incomplete, nothing of the day is stored")
    token = meta.get("next_token")
    if token is not None and (not isinstance(token, str) or not token):
        raise MalformedResponse(f"{where} answered a page whose meta.next_token is {token!r}, not a token")
    asked = set(fields)
    required = REQUIRED + tuple(name for name in REQUIRED_IF_ASKED if name in asked)
    edits = any(isinstance(post, dict) and EDIT_IDS in post for post in data)
    ids = [_check_post(post, number, required, edits, window, where) for number, post in enumerate(data)]
    if first and data:
        missing = [name for name in FIRST_PAGE_FIELDS if name in asked and not any(name in post for post in data)]
        if missing:
            raise MalformedResponse(f"{where}: asked for tweet.fields {','.join(missing)} but no post of the first page "
                                    "has them: the API dropped or renamed them; fix [xapi] tweet_fields")
    _check_users(body.get("includes"), where)
    return ids


def _check_post(post: object, number: int, required: tuple[str, ...], edits: bool, window: Window | None,
                where: str) -> str:
    if not isinstance(post, dict):
        raise MalformedResponse(f"{where}: post {number} of the page is not an object")
    for name in required + ((EDIT_IDS,) if edits else ()):
        if name not in post:
            raise MalformedResponse(f"{where}: post {post.get('id')!r} has no {name}, which every post must have")
    post_id = post["id"]
    for name in ("id", *ID_FIELDS):
        value = post.get(name)
        if name in post and not (isinstance(value, str) and ID_RE.match(value)):
            raise MalformedResponse(f"{where}: post {post_id!r} has {name} {value!r}, not an id string")
    if not isinstance(post["text"], str):
        raise MalformedResponse(f"{where}: post {post_id!r} has text {post['text']!r}, not a string")
    if EDIT_IDS in post:
        history = post[EDIT_IDS]
        if not isinstance(history, list) or not history or not all(isinstance(i, str) and ID_RE.match(i) for i in history):
            raise MalformedResponse(f"{where}: post {post_id!r} has {EDIT_IDS} {history!r}, not a list of id strings")
    if "created_at" in post:
        _check_created(post_id, post["created_at"], window, where)
    return post_id


def _check_created(post_id: str, stamp: object, window: Window | None, where: str) -> None:
    if not (isinstance(stamp, str) and STAMP_RE.match(stamp)):
        raise MalformedResponse(f"{where}: post {post_id!r} has created_at {stamp!r}, not an RFC 3339 UTC time")
    if window is not None and not window.start <= datetime.fromisoformat(stamp) < window.end:
        raise MalformedResponse(f"{where}: post {post_id!r} created at {stamp} is outside the requested window "
                                f"{window.start:%Y-%m-%dT%H:%MZ}..{window.end:%Y-%m-%dT%H:%MZ}; the API ignored it, "
                                "nothing of the day is stored")


def _check_users(includes: object, where: str) -> None:
    if includes is None:
        return
    users = includes.get("users", []) if isinstance(includes, dict) else None
    if not isinstance(users, list) or not all(isinstance(u, dict) and isinstance(u.get("id"), str) and ID_RE.match(u["id"])
                                              for u in users):
        raise MalformedResponse(f"{where}: includes.users is not a list of users with id strings")


def validate_counts_page(body: object, where: str = "counts") -> dict[date, int]:
    """Posts per day bucket of a counts page (granularity=day, summed by start day); raises `MalformedResponse`."""
    if not isinstance(body, dict) or not isinstance(body.get("data", []), list) or not isinstance(body.get("meta", {}), dict):
        raise MalformedResponse(f"{where} answered without data/meta; is [xapi] base_url an X API?")
    found: dict[date, int] = {}
    for bucket in body.get("data", ()):
        try:
            day = date.fromisoformat(str(bucket["start"])[:10])
            posts = bucket["tweet_count"]
        except (KeyError, TypeError, ValueError):
            raise MalformedResponse(f"{where} answered a bucket without start/tweet_count: {str(bucket)[:80]}") from None
        if not isinstance(posts, int) or posts < 0:
            raise MalformedResponse(f"{where} answered tweet_count {posts!r} for {day}, not a count")
        found[day] = found.get(day, 0) + posts
    return found


@dataclass
class PageGuard:
    """Stops a paging run that would not end, naming why; nothing more is requested (or billed).

    `max_pages`: far more pages than the run can need (None: no cap). `idle_pages`: pages in a
    row that add no new item (a post id, a counts bucket) before the run is stopped.
    """

    where: str
    max_pages: int | None = None
    idle_pages: int = 20
    pages: int = 0
    _tokens: set[str] = field(default_factory=set, repr=False)
    _idle: int = 0

    def next_page(self, new_items: int, token: str | None) -> str | None:
        """Note a page and how many items it added that the run had not seen; the token to request
        next, or None when the run is over."""
        self.pages += 1
        self._idle = 0 if new_items else self._idle + 1
        if not token:
            return None
        if token in self._tokens:
            raise MalformedResponse(f"{self.where}: page {self.pages} returned a next_token seen before in this run "
                                    "(paging would never end); stopped, nothing more billed")
        if self._idle >= self.idle_pages:
            raise MalformedResponse(f"{self.where}: {self._idle} pages in a row added nothing new and paging goes on; "
                                    "stopped, nothing more billed")
        if self.max_pages is not None and self.pages >= self.max_pages:
            raise MalformedResponse(f"{self.where}: {self.pages} pages and paging goes on, far more than the day's "
                                    "expected posts need ([xapi] page_slack); stopped, nothing more billed")
        self._tokens.add(token)
        return token
