"""`flixluigi s3check` against the session's SeaweedFS (started with the pipeline's bucket-limited
identity), and against it behind the fault proxy posing as a store that lets every conditional PUT
through: the check must pass on the one and say in one line what is wrong with the other, and
leave no key behind either way."""

from __future__ import annotations

import re

from flixluigi import cli
from flixluigi.ops import s3check
from tests.conftest import Pipeline
from tests.faultproxy import FaultProxy, Rule
from tests.helpers import keys

ROUNDS = "3"  # the default is 5; three rounds keep the test short and still release the writers together thrice


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["s3check", "--rounds", ROUNDS, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_check_passes_on_seaweedfs_and_cleans_up(pipeline: Pipeline, capsys):
    code, out, err = run(capsys)
    assert (code, err) == (0, ""), err
    (line,) = out.splitlines()
    assert line.startswith(f"S3 check passed at {pipeline.seaweed.endpoint} bucket 'flixluigi-test': in 3 rounds of 8 concurrent")
    assert "evidence" in line and "not proof" in line, "a pass on two cores is evidence only"
    assert keys(pipeline.seaweed.endpoint, f"{s3check.PREFIX}/") == []


def test_a_store_that_lets_concurrent_writers_through_fails_in_one_line(pipeline: Pipeline, capsys):
    """The store answers the losers 412; the proxy turns that into 200 for the racing rounds only,
    so the sequential first check passes and the concurrent one must catch it."""
    with FaultProxy(pipeline.seaweed.endpoint) as proxy:
        pipeline.set("s3", "endpoint_url", proxy.url)
        proxy.add(Rule("PUT", r"/round-\d+$", "ignore-precondition", times=0))
        code, out, err = run(capsys, "--writers", "4")
        stored = sorted(seen.status for seen in proxy.requests("PUT", r"/round-1$"))
    assert (code, out) == (1, "")
    (line,) = err.splitlines()
    assert re.fullmatch(r"flixluigi: S3 check failed at http://127\.0\.0\.1:\d+ bucket 'flixluigi-test': round 1: 4 concurrent "
                        r"If-None-Match: \* PUTs of one new key got 4 x 200, not one 200 and the rest 412: concurrent Delta "
                        r"commits could overwrite each other; use a server that refuses it with 412 \(SeaweedFS 4\.48.*", line), line
    assert stored == [200, 412, 412, 412], "the store itself let one writer through"
    assert keys(pipeline.seaweed.endpoint, f"{s3check.PREFIX}/") == []


def test_a_conditional_put_setting_that_does_not_match_the_server_fails_before_writing(pipeline: Pipeline, capsys):
    pipeline.set("storage", "conditional_put", "")
    code, out, err = run(capsys)
    assert (code, out) == (1, "")
    assert err.strip().endswith("[storage] conditional_put = '' does not match this server, which takes If-None-Match: * "
                                "and If-Match PUTs; set [storage] conditional_put = etag"), err
    assert keys(pipeline.seaweed.endpoint, f"{s3check.PREFIX}/") == []
