"""Batch compliance: the client against the sandbox over HTTP, and its results applied to recorded pages and rows."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime

import orjson
import pytest
import requests

from devkit import sandbox
from devkit.sandbox import ComplianceConfig, Faults
from flixluigi.compliance.rules import Ledger, Summary, Verdicts, apply_lines, apply_page, ids_to_check
from flixluigi.curation.pseudonym import Pseudonymizer
from flixluigi.errors import (
    ComplianceDataError,
    ComplianceError,
    ComplianceFault,
    ComplianceUnauthorized,
    ComplianceUnreachable,
    JobFailed,
    TransientFault,
    Unauthorized,
)
from flixluigi.xapi.compliance import MAX_IDS_PER_JOB, ComplianceClient
from tests.conftest import FIXTURES, TOKEN, api_url, free_port

KEY = b"unit-test-key-0123456789abcdef0123"
DAY = date(2021, 9, 22)
WHEN = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def serve():
    started = []

    def start(**options) -> sandbox.SandboxServer:
        server = sandbox.start(token=TOKEN, compliance=ComplianceConfig(**options))
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()


def client(server: sandbox.SandboxServer, **options) -> ComplianceClient:
    return ComplianceClient(api_url(server), TOKEN, **{"poll_interval": 0.001, "backoff_factor": 0.001, "timeout": 5, **options})


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and message
    return message


# -- the client over HTTP --------------------------------------------------------------------------------------------


def test_full_job_cycle_returns_exactly_the_affected_ids(serve):
    server = serve(tweets={"1001": "deleted", "1002": "protected", "1003": "suspended", "1004": "scrub_geo"}, polls_to_complete=3)
    ids = ["1001", "1002", "1003", "1004", "1005", "1006"]
    records = client(server).check("tweets", ids, name="flixluigi-2022-09-12")
    assert {(r.id, r.reason) for r in records} == {("1001", "deleted"), ("1002", "protected"), ("1003", "suspended"),
                                                   ("1004", "scrub_geo")}
    assert all(r.action and r.created_at and r.redacted_at for r in records)
    state = server.api.compliance
    (job,) = state.jobs.values()
    assert (job.type, job.name, job.status, job.ids, job.polls) == ("tweets", "flixluigi-2022-09-12", "complete", ids, 3)
    assert (state.uploads, state.downloads, state.storage_with_token) == (1, 1, 0)


def test_job_answers_have_the_real_shape(serve):
    server = serve()
    job = client(server).create("users", "named")
    answer = requests.get(f"{api_url(server)}/2/compliance/jobs/{job.id}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    data = answer.json()["data"]
    assert set(data) == {"id", "type", "name", "status", "created_at", "upload_url", "upload_expires_at", "download_url",
                         "download_expires_at"}
    assert (data["type"], data["status"], data["name"]) == ("users", "created", "named")
    listed = requests.get(f"{api_url(server)}/2/compliance/jobs", params={"type": "users"},
                          headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).json()
    assert [j["id"] for j in listed["data"]] == [job.id] and listed["meta"] == {"result_count": 1}


def test_presigned_urls_refuse_the_bearer_token_and_the_client_never_sends_it(serve):
    server = serve(tweets={"1001": "deleted"})
    job = client(server).create("tweets")
    refused = requests.put(job.upload_url, data=b"1001\n", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert refused.status_code == 400 and server.api.compliance.storage_with_token == 1
    forged = requests.put(job.upload_url.replace("Signature=", "Signature=0"), data=b"1001\n", timeout=5)
    assert forged.status_code == 403
    assert [r.id for r in client(server).check("tweets", ["1001", "1002"])] == ["1001"]
    assert server.api.compliance.storage_with_token == 1


def test_states_change_between_checks(serve):
    server = serve(tweets={"2001": (None, "deleted"), "2002": ("protected", None), "2003": "deleted"},
                   users={"3001": (None, None, "suspended")})
    c = client(server)
    runs = [({r.id: r.reason for r in c.check("tweets", ["2001", "2002", "2003"])},
             {r.id: r.reason for r in c.check("users", ["3001"])}) for _ in range(3)]
    assert runs == [({"2002": "protected", "2003": "deleted"}, {}),
                    ({"2001": "deleted", "2003": "deleted"}, {}),
                    ({"2001": "deleted", "2003": "deleted"}, {"3001": "suspended"})]


def test_rate_based_states_are_seeded_cover_every_reason_and_grow_on_the_next_check(serve):
    ids = [str(10**17 + i) for i in range(4000)]
    server = serve(rate=0.05, seed=7)
    first, second = ({r.id: r.reason for r in client(server).check("tweets", ids)} for _ in range(2))
    assert {r.id: r.reason for r in client(serve(rate=0.05, seed=7)).check("tweets", ids)} == first
    assert {r.id: r.reason for r in client(serve(rate=0.05, seed=8)).check("tweets", ids)} != first
    assert set(first.values()) == {"deleted", "protected", "suspended", "scrub_geo"} and 100 < len(first) < 300
    assert first.items() < second.items() and set(second.keys() - first.keys()) and \
        {second[i] for i in second.keys() - first.keys()} == {"deleted"}


def test_sets_over_the_job_limit_run_as_several_jobs(serve):
    assert ComplianceClient("http://x", TOKEN).max_ids_per_job == MAX_IDS_PER_JOB == 100_000
    flagged = {str(5000 + i): "deleted" for i in range(0, 120, 7)}
    server = serve(tweets=flagged, max_ids=50)
    ids = [str(5000 + i) for i in range(120)]
    records = client(server, max_ids_per_job=50).check("tweets", ids + ids[:10], name="big")
    assert {r.id: r.reason for r in records} == flagged
    jobs = list(server.api.compliance.jobs.values())
    assert [len(j.ids) for j in jobs] == [50, 50, 20]
    assert [j.name for j in jobs] == ["big-1of3", "big-2of3", "big-3of3"]
    assert [i for j in jobs for i in j.ids] == ids


def test_a_job_over_the_apis_limit_fails_in_one_line(serve):
    server = serve(max_ids=50)
    with pytest.raises(JobFailed) as exc:
        client(server, max_ids_per_job=60).check("tweets", [str(7000 + i) for i in range(60)])
    assert "failed" in one_line(exc)


@pytest.mark.parametrize("outcome", ["failed", "expired"])
def test_failed_and_expired_jobs_raise_one_line_and_download_nothing(serve, outcome):
    server = serve(tweets={"1001": "deleted"}, outcomes={1: outcome}, polls_to_complete=2)
    c = client(server)
    with pytest.raises(JobFailed) as exc:
        c.check("tweets", ["1001", "1002"])
    job_id = next(iter(server.api.compliance.jobs))
    message = one_line(exc)
    assert job_id in message and outcome in message and "run the compliance check again" in message
    assert (exc.value.job_id, exc.value.status, exc.value.transient) == (job_id, outcome, True)
    assert server.api.compliance.downloads == 0
    assert [r.id for r in c.check("tweets", ["1001", "1002"])] == ["1001"]  # a new job succeeds


def test_a_job_that_never_completes_times_out_in_one_line(serve):
    server = serve(polls_to_complete=10**9)
    with pytest.raises(JobFailed) as exc:
        client(server, poll_timeout=0.05).check("tweets", ["1001"])
    assert "still in_progress" in one_line(exc) and exc.value.status == "in_progress"


def test_transient_faults_are_retried(serve):
    server = serve(tweets={"1001": "deleted"}, polls_to_complete=20)
    server.faults = Faults(rate=0.4, kinds=("503", "drop", "truncate"), seed=3)
    records = client(server).check("tweets", ["1001", "1002"])
    assert [r.id for r in records] == ["1001"]
    assert sum(server.faults_injected.values()) > 0


def test_a_rate_limit_longer_than_the_longest_wait_fails_in_one_line():
    server = sandbox.start(token=TOKEN, rate_limit=1, rate_window=900, compliance=ComplianceConfig(polls_to_complete=5))
    try:
        with pytest.raises(ComplianceError) as exc:
            client(server, max_rate_limit_wait=60).check("tweets", ["1001"])
    finally:
        server.shutdown()
    assert "rate limit of /2/compliance/jobs/" in one_line(exc) and "run later" in str(exc.value)
    assert server.statuses[429] == 1


def test_wrong_token_and_bad_inputs_fail_in_one_line(serve):
    server = serve()
    with pytest.raises(Unauthorized) as exc:
        ComplianceClient(api_url(server), "wrong-token").check("tweets", ["1"])
    assert isinstance(exc.value, ComplianceUnauthorized) and not exc.value.transient
    assert "token_env" in one_line(exc)
    c = client(server)
    for kind, ids, fix in (("posts", ["1"], "choose one of tweets, users"), ("tweets", ["12a"], "strings of digits")):
        with pytest.raises(ComplianceError) as exc:
            c.check(kind, ids)
        assert fix in one_line(exc)
    with pytest.raises(ComplianceError, match=r"choose 1\.\.100000"):
        client(server, max_ids_per_job=100_001)
    with pytest.raises(ComplianceUnreachable) as exc:
        ComplianceClient(f"http://127.0.0.1:{free_port()}", TOKEN).check("tweets", ["1"])
    assert "scripts/sandbox.sh start" in one_line(exc)
    assert c.check("tweets", []) == [] and not server.api.compliance.jobs
    with pytest.raises(ComplianceError) as exc:
        c.status("1500000000000000000")
    assert "Could not find compliance job" in one_line(exc)
    assert issubclass(ComplianceFault, TransientFault) and ComplianceFault.transient


# -- applying results to recorded pages ------------------------------------------------------------------------------


def stored_pages() -> list[dict]:
    """The recorded pages as RawTweets stores them: the API body plus its request metadata."""
    return [{**{k: v for k, v in page.items() if k != "__twarc"},
             "__flixluigi": {"url": page["__twarc"]["url"], "retrieved_at": page["__twarc"]["retrieved_at"], "attempts": 1,
                             "status": 200}} for page in map(orjson.loads, (FIXTURES / "2sets.jsonl").read_bytes().splitlines())]


def dumps(value: object) -> bytes:
    return orjson.dumps(value)


@pytest.fixture
def flagged():
    """Ids of the first recorded page only (the second page must come out untouched), with one of each case."""
    first, second = stored_pages()
    others = {t["id"] for t in (*second["data"], *second["includes"]["tweets"])} | {u["id"] for u in second["includes"]["users"]}
    data = [t for t in first["data"] if t["id"] not in others]
    everything = [*first["data"], *first["includes"]["tweets"]]
    media_refs = Counter(k for t in everything for k in t.get("attachments", {}).get("media_keys", ()))
    with_media = next(t for t in data if t.get("attachments", {}).get("media_keys") and
                      all(media_refs[k] == 1 for k in t["attachments"]["media_keys"]))
    shared_media = next(t for t in data if t is not with_media and any(media_refs[k] > 1 for k in t.get("attachments", {}).get(
        "media_keys", ())))
    with_geo = next(t for t in data if "geo" in t)
    plain = [t for t in data if t not in (with_media, with_geo, shared_media) and "attachments" not in t]
    included = next(t for t in first["includes"]["tweets"] if t["id"] not in others and t["id"] not in {d["id"] for d in data})
    tweets = {with_media["id"]: "deleted", shared_media["id"]: "deleted", plain[1]["id"]: "protected", included["id"]: "suspended",
              with_geo["id"]: "scrub_geo", plain[2]["id"]: "scrub_geo", "1440000000000000001": "deleted"}
    authors = {t["author_id"] for t in first["data"] if t["id"] not in tweets}  # whose rows stay in the curated day
    users = [u for u in first["includes"]["users"] if u["id"] not in others and u["id"] in authors]
    located = next(u for u in users[1:] if u.get("location"))
    return {"tweets": tweets, "users": {users[0]["id"]: "suspended", located["id"]: "scrub_geo"},
            "media": with_media["attachments"]["media_keys"], "place": with_geo["geo"]["place_id"]}


def apply_pages(pages: list[dict], verdicts: Verdicts) -> tuple[list[dict], Summary]:
    summary = Summary()
    return [apply_page(page, verdicts, summary) for page in pages], summary


def verdicts_over_http(serve, pages: list[dict], flagged: dict) -> Verdicts:
    """The whole path: the day's ids checked by jobs on the sandbox, their results made verdicts."""
    server = serve(tweets=flagged["tweets"], users=flagged["users"])
    tweet_ids, user_ids = ids_to_check(pages)
    c = client(server, max_ids_per_job=150)
    return Verdicts.from_records(c.check("tweets", sorted(tweet_ids)), c.check("users", sorted(user_ids)))


def test_pages_lose_exactly_the_flagged_posts_and_keep_everything_else(serve, flagged):
    pages = stored_pages()
    originals = [dumps(p) for p in pages]
    verdicts = verdicts_over_http(serve, pages, flagged)
    out, summary = apply_pages(pages, verdicts)
    assert [dumps(p) for p in pages] == originals  # the input is not modified
    removed = {i for i, r in flagged["tweets"].items() if r != "scrub_geo"}
    (first, second), (new_first, new_second) = pages, out
    assert new_second is second

    assert {k: dumps(v) for k, v in new_first.items() if k not in ("data", "includes", "meta")} == \
           {k: dumps(v) for k, v in first.items() if k not in ("data", "includes", "meta")}
    assert new_first["__flixluigi"] == first["__flixluigi"] and new_first["errors"] == first["errors"]
    for section, before, after in (("data", first["data"], new_first["data"]),
                                   ("tweets", first["includes"]["tweets"], new_first["includes"]["tweets"])):
        kept = [t for t in before if t["id"] not in removed]
        assert [t["id"] for t in after] == [t["id"] for t in kept], section
        for old, new in zip(kept, after, strict=True):
            if old["id"] == next(i for i, r in flagged["tweets"].items() if r == "scrub_geo"):
                assert "geo" not in new and dumps({k: v for k, v in old.items() if k != "geo"}) == dumps(new)
            else:
                assert dumps(old) == dumps(new)
    meta = new_first["meta"]
    assert meta["result_count"] == len(new_first["data"]) and meta["next_token"] == first["meta"]["next_token"]
    assert (meta["newest_id"], meta["oldest_id"]) == (new_first["data"][0]["id"], new_first["data"][-1]["id"])

    users_before, users_after = first["includes"]["users"], new_first["includes"]["users"]
    for old, new in zip(users_before, users_after, strict=True):
        reason = flagged["users"].get(old["id"])
        expected = {"id": old["id"]} if reason == "suspended" else \
            {k: v for k, v in old.items() if k != "location"} if reason == "scrub_geo" else old
        assert dumps(new) == dumps(expected)
    media_after = {m["media_key"] for m in new_first["includes"]["media"]}
    assert media_after == {m["media_key"] for m in first["includes"]["media"]} - set(flagged["media"])
    assert [p["id"] for p in new_first["includes"]["places"]] == [p["id"] for p in first["includes"]["places"] if p["id"] != flagged["place"]]

    present = {t["id"] for t in (*first["data"], *first["includes"]["tweets"])}
    assert summary.tweets == {i: r for i, r in flagged["tweets"].items() if i in present and (r != "scrub_geo" or i == next(
        t["id"] for t in first["data"] if "geo" in t))}
    assert summary.users == flagged["users"]
    assert summary.counts()["tweets"] == {"deleted": 2, "protected": 1, "suspended": 1, "scrub_geo": 1}
    assert {"media", "place"} <= flagged.keys()

    again, second_summary = apply_pages(out, verdicts)
    assert all(a is b for a, b in zip(again, out, strict=True)) and not second_summary.changed


def test_raw_lines_of_unaffected_pages_stay_the_same_bytes_and_rerunning_is_a_no_op(serve, flagged):
    pages = stored_pages()
    lines = [dumps(p) + b"\n" for p in pages]
    verdicts = verdicts_over_http(serve, pages, flagged)
    summary = type(apply_pages([], verdicts)[1])()
    out = list(apply_lines(lines, verdicts, summary))
    assert out[1] is lines[1] and out[0] != lines[0] and out[0].endswith(b"\n") and summary.changed
    assert orjson.loads(out[0]) == apply_pages(pages, verdicts)[0][0]
    rerun = type(summary)()
    assert list(apply_lines(out, verdicts, rerun)) == out and not rerun.changed
    unaffected = type(summary)()
    assert list(apply_lines(lines, Verdicts(), unaffected)) == lines and not unaffected.changed


# -- the ledger ------------------------------------------------------------------------------------------------------


def test_ledger_keeps_hashes_only_and_knows_its_ids_when_read_back(serve, flagged):
    pages = stored_pages()
    verdicts = verdicts_over_http(serve, pages, flagged)
    _, summary = apply_pages(pages, verdicts)
    ledger = Ledger(KEY)
    entries = ledger.record(summary, DAY, WHEN)
    text = dumps(entries).decode()
    assert len(entries) == len(summary.tweets) + len(summary.users)
    assert not [i for i in (*summary.tweets, *summary.users) if i in text]
    assert {e["kind"] for e in entries} == {"tweet", "user"} and all(e["hash"].startswith(ledger.key_id + ":") for e in entries)
    assert not set(e["hash"] for e in entries) & {Pseudonymizer(KEY)(u) for u in summary.users}
    assert ledger.record(summary, DAY, WHEN) == []  # the same ids are listed once

    stored = orjson.loads(dumps(entries))  # as a state object would keep it
    reread = Ledger(KEY, stored)
    assert reread.record(summary, DAY, WHEN) == [] and reread.entries == stored  # read back, it knows every id it holds
    with pytest.raises(ComplianceDataError) as exc:
        Ledger(b"another-key-0123456789abcdef012345", stored)
    assert "HMAC key the ledger was written with" in one_line(exc)
