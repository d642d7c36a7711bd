"""What fetching costs under pay-per-use, before and after: pure arithmetic, no I/O.

The X API bills every post read (the same post read twice in one UTC day once) and every
counts request. An estimate comes from the counts endpoint (`XClient.daily_counts`), which
reads no post; the budget check compares what a day would read with what the month has left
(`XClient.usage()`, or the posts recorded in the raw manifests).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from flixluigi.xapi.client import COUNTS_SPAN_DAYS


def counts_requests(days: int) -> int:
    """Counts requests needed for `days` days at one request per 31 days (granularity=day)."""
    return math.ceil(days / COUNTS_SPAN_DAYS) if days > 0 else 0


def cost(posts: int, count_requests: int, price_per_post: float, price_per_count_request: float) -> float:
    """USD for `posts` posts read and `count_requests` counts requests."""
    return posts * price_per_post + count_requests * price_per_count_request


@dataclass(frozen=True)
class Estimate:
    """What fetching a range is expected to cost, from the counts endpoint's daily figures."""

    days: int
    expected_posts: int
    count_requests: int
    cost: float

    def line(self) -> str:
        return (f"{self.days} days, {self.expected_posts} posts expected, estimated cost ${self.cost:.2f} "
                f"({self.count_requests} counts requests included)")


def estimate(daily: Mapping[date, int], price_per_post: float, price_per_count_request: float) -> Estimate:
    """The range's expected posts and cost: its posts, plus the counts requests that estimate it
    and that reconcile it afterwards (one per 31 days each)."""
    days = len(daily)
    posts = sum(daily.values())
    requests = 2 * counts_requests(days)
    return Estimate(days, posts, requests, cost(posts, requests, price_per_post, price_per_count_request))


def budget_problem(expected_posts: int, used_posts: int, monthly_budget: int) -> str | None:
    """One line saying why reading `expected_posts` more would take the month past its budget; None when it
    fits or there is no budget (0)."""
    if monthly_budget <= 0 or used_posts + expected_posts <= monthly_budget:
        return None
    left = max(0, monthly_budget - used_posts)
    return (f"{expected_posts} posts expected but only {left} of the month's budget of {monthly_budget} are left "
            f"({used_posts} read); raise [xapi] monthly_post_budget or wait for the next billing period")
