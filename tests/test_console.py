"""The web console and the dry run it shows: over HTTP against a real luigid, SeaweedFS and the sandbox."""

from __future__ import annotations

from datetime import date

from flixluigi.ops.plan import plan
from flixluigi.tasks import CuratedTweets, RawTweets
from tests.helpers import build

D = date(2022, 9, 12)


def test_plan_reads_stored_counts_only_and_names_what_each_day_gets(pipeline):
    assert build(CuratedTweets(D), RawTweets(date(2022, 9, 13))).scheduling_succeeded
    backfill = plan("Backfill", D, date(2022, 9, 14))
    assert [d.action.split(":")[0].split(" from")[0] for d in backfill.days] == ["complete", "build", "fetch"]
    (fetched,) = backfill.fetched
    assert fetched.expected_posts is not None, "the month's counts were stored by the fetch of 2022-09-12"
    assert backfill.cost_line().startswith(f"Backfill {D}..2022-09-14 reads the X API for 1 day(s): "
                                           f"{fetched.expected_posts} posts expected, about $")
    refetch = plan("Reprocess", date(2022, 10, 1), date(2022, 10, 2), refetch=True)
    assert refetch.unknown == [date(2022, 10, 1), date(2022, 10, 2)], "no counts stored for October: unknown, not fetched"
    assert "unknown for 2 day(s)" in refetch.cost_line()
    assert plan("Reprocess", D).days[0].action.startswith("rebuild from raw fetch ")
    assert plan("Compliance", date(2022, 9, 14)).cost_line().endswith("reads no post from the API: no cost")
