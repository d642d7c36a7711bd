"""Flattening and pseudonymising recorded and synthetic pages, without S3."""

import io
import json
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from devkit.parquet import write_parquet
from devkit.sandbox import load_pages
from flixluigi.curation.curator import Curator
from flixluigi.curation.gate import check_batch
from flixluigi.curation.pseudonym import Pseudonymizer
from flixluigi.curation.schema import SCHEMA
from flixluigi.errors import QualityError
from tests.conftest import FIXTURES, ROOT
from tests.helpers import all_strings, is_pseudonym

PSEUDO = Pseudonymizer(b"unit-test-key-0123456789abcdef0123")
WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def curate(pages, day):
    sink = io.BytesIO()
    curator = Curator(day, PSEUDO, WHEN)
    write_parquet(pages, sink, curator)
    return pq.read_table(pa.BufferReader(sink.getvalue())), curator.stats


def raw_identities(pages):
    ids, names = set(), set()
    for page in pages:
        for user in page.get("includes", {}).get("users", ()):
            ids.add(user["id"])
            names.add(user["username"])
        for tweet in page.get("data", ()):
            ids.add(tweet["author_id"])
            for m in tweet.get("entities", {}).get("mentions", ()):
                names.add(m["username"])
                if "id" in m:
                    ids.add(m["id"])
    return ids, names


def test_recorded_pages_flatten_without_leaking_identities():
    pages = load_pages(FIXTURES / "2sets.jsonl")
    table, stats = curate(pages, date(2021, 9, 22))
    assert table.schema.equals(SCHEMA, check_metadata=False)
    assert stats.rows == table.num_rows == len({t["id"] for p in pages for t in p["data"]})
    assert stats.partial_errors == 1
    ids, names = raw_identities(pages)
    strings = all_strings(table)
    assert not [s for s in strings for i in ids if i in s]
    assert not [s for s in strings for n in names if "@" + n.lower() in s.lower()]
    assert all(is_pseudonym(v) for v in table.column("author_id").to_pylist())
    rows = table.to_pylist()
    assert any(r["is_retweet"] for r in rows) and any(r["is_quote"] for r in rows) and any(r["is_reply"] for r in rows)
    assert all(h == h.lower() and not h.startswith("#") for r in rows for h in r["hashtags"])


def test_retweet_handle_becomes_the_mentioned_users_pseudonym():
    page = load_pages(FIXTURES / "two_tweets.jsonl")[0]
    table, _ = curate([page], date(2021, 5, 18))
    row = table.to_pylist()[0]
    mentioned = next(u["id"] for u in page["includes"]["users"] if u["username"] == "bibaigna96")
    assert row["text"] == f"RT @{PSEUDO(mentioned)}: #POIUYTREWQ"
    assert row["mentioned_user_ids"] == [PSEUDO(mentioned)]
    assert row["is_retweet"] and row["referenced_tweet_ids"] == ["1391677057810288641"]
    assert row["impression_count"] is None and row["author_location"] is None
    assert row["author_followers_count"] == 0 and row["hashtags"] == ["poiuytrewq"]


def test_unknown_handles_get_a_placeholder_and_emails_are_removed():
    tweet = {"id": "1", "created_at": "2022-09-12T10:00:00.000Z", "author_id": "99",
             "text": "@nobody_known hi, mail me at a@b.example"}
    table, _ = curate([{"data": [tweet], "meta": {}}], date(2022, 9, 12))
    assert table.column("text").to_pylist() == ["@[user] hi, mail me at [email]"]


def test_duplicates_across_pages_keep_one_row_and_order_is_deterministic():
    pages = load_pages(FIXTURES / "noflat.jsonl")
    once, _ = curate(pages, date(2021, 4, 8))
    twice, stats = curate(pages + pages, date(2021, 4, 8))
    assert stats.duplicates == once.num_rows
    assert once.drop(["processed_at"]).equals(twice.drop(["processed_at"]))


def test_tweet_outside_the_day_fails_the_gate():
    pages = load_pages(FIXTURES / "two_tweets.jsonl")
    with pytest.raises(QualityError, match="outside 2021-05-19"):
        curate(pages, date(2021, 5, 19))


def test_tweet_without_id_fails_the_gate():
    with pytest.raises(QualityError, match="without id"):
        curate([{"data": [{"text": "x", "created_at": "2022-09-12T00:00:00Z"}], "meta": {}}], date(2022, 9, 12))


def test_gate_catches_a_raw_id_left_in_a_column():
    curator = Curator(date(2022, 9, 12), PSEUDO, WHEN)
    tweet = {"id": "1", "created_at": "2022-09-12T10:00:00.000Z", "author_id": "1234567890", "text": "ok"}
    batch = next(curator.batches([json.dumps({"data": [tweet], "meta": {}}).encode()]))
    check_batch(batch, curator.stats)
    leaked = batch.set_column(SCHEMA.get_field_index("text"), "text", pa.array(["call 1234567890"]))
    with pytest.raises(QualityError, match="raw user id"):
        check_batch(leaked, curator.stats)
    raw_author = batch.set_column(SCHEMA.get_field_index("author_id"), "author_id", pa.array(["1234567890"]))
    with pytest.raises(QualityError, match="not a pseudonym"):
        check_batch(raw_author, curator.stats)


def test_empty_day_gives_an_empty_table_with_the_schema():
    table, stats = curate([{"meta": {"result_count": 0}}], date(2022, 9, 12))
    assert table.num_rows == 0 and stats.rows == 0 and table.schema.equals(SCHEMA, check_metadata=False)


def test_docs_schema_matches_the_written_schema():
    rows = [line.split("|")[1:3] for line in (ROOT / "docs" / "schema.md").read_text().splitlines()
            if line.startswith("| ") and not line.startswith("| column")]
    documented = [(name.strip(), kind.strip()) for name, kind in rows]
    assert documented == [(f.name, _doc_type(f.type)) for f in SCHEMA]


def _doc_type(kind: pa.DataType) -> str:
    names = {pa.bool_(): "bool", pa.date32(): "date32"}
    return "list<string>" if pa.types.is_list(kind) else names.get(kind, str(kind))
