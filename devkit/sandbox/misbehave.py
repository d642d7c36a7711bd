"""Answers that are wrong in their content, the way real APIs and proxies have been seen to send them.

`Misbehaviour.answer` turns a correct search or counts body into a wrong one (a page fault);
`Misbehaviour.request` maps the tokens it invented back to real ones, so paging that never ends
can go on against the real corpus. Pure but for its own memory of tokens; the server applies it.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

# Faults of a page's content (search pages unless named counts-).
PAGE_FAULTS = ("token-loop", "token-endless", "posts-endless", "counts-endless", "no-data", "outside-window",
               "bad-created-at", "bad-edit-id", "author-int", "field-dropped")
# What `field-dropped` leaves out: a field asked for that the API no longer knows by that name.
DROPPED_FIELD = "public_metrics"
ENDLESS_ID_BASE = 1_900_000_000_000_000_000


@dataclass
class Misbehaviour:
    kind: str
    _first_token: str | None = None
    _aliases: dict[str, str] = field(default_factory=dict)
    _counter: itertools.count = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.kind not in PAGE_FAULTS:
            raise ValueError(f"unknown page fault {self.kind!r}; choose from {', '.join(PAGE_FAULTS)}")

    def request(self, params: dict[str, str]) -> dict[str, str]:
        """The request as the corpus understands it: an invented token stands for the real one it repeats."""
        token = params.get("next_token")
        with self._lock:
            real = self._aliases.get(token or "")
        if real is None:
            return params
        if not real:  # stands for the first page, which has no token
            return {k: v for k, v in params.items() if k != "next_token"}
        return {**params, "next_token": real}

    def remember(self, body: dict) -> None:
        """Note the first real next_token (what token-loop answers again later)."""
        with self._lock:
            self._first_token = self._first_token or body.get("meta", {}).get("next_token")

    def answer(self, body: dict, params: dict[str, str], counts: bool) -> dict:
        """The wrong answer to a request whose right answer is `body`."""
        if counts != (self.kind == "counts-endless"):
            return body
        body = {**body, "meta": dict(body.get("meta", {}))}
        posts = [dict(t) for t in body.get("data", ())]
        kind = self.kind
        if kind == "token-loop":
            self.remember(body)
            body["meta"]["next_token"] = self._first_token or "loop"
        elif kind in ("token-endless", "counts-endless"):
            body["meta"]["next_token"] = self._alias(params.get("next_token", ""))
        elif kind == "posts-endless":
            n = next(self._counter)
            start = datetime.fromisoformat(params["start_time"].replace("Z", "+00:00"))
            stamp = (start + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            posts = [{**posts[0], "id": str(ENDLESS_ID_BASE + n), "created_at": stamp, "conversation_id": str(ENDLESS_ID_BASE + n),
                      "edit_history_tweet_ids": [str(ENDLESS_ID_BASE + n)]}] if posts else posts
            body["meta"].update(result_count=len(posts), next_token=self._alias(params.get("next_token", "")))
        elif kind == "no-data":
            posts, body["meta"]["result_count"] = [], 100
        elif posts and kind == "outside-window":
            end = datetime.fromisoformat(params["end_time"].replace("Z", "+00:00"))
            posts[0]["created_at"] = (end + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        elif posts and kind == "bad-created-at":
            posts[0]["created_at"] = "Mon Sep 12 08:00:00 +0000 2022"
        elif posts and kind == "bad-edit-id":
            posts[0]["edit_history_tweet_ids"] = ["not-an-id", posts[0]["id"]]
        elif posts and kind == "author-int":
            posts[0]["author_id"] = int(posts[0]["author_id"])
        elif kind == "field-dropped":
            posts = [{k: v for k, v in t.items() if k != DROPPED_FIELD} for t in posts]
        if posts:
            body["data"] = posts
        else:
            body.pop("data", None)
        return body

    def _alias(self, real: str) -> str:
        """A token never sent before that stands for `real` (the same page again)."""
        with self._lock:
            token = f"endless{next(self._counter)}"
            self._aliases[token] = real
        return token
