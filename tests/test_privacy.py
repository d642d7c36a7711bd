"""The privacy contract (docs/privacy.md) against an adversarial raw day: curated directly,
fetched from the sandbox's replay over HTTP by the real client, and run through the real tasks;
every cell, list item and piece of Parquet metadata is scanned for what the contract removes."""

from __future__ import annotations

import io
import json
import re
import unicodedata
from datetime import UTC, datetime

import luigi
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from luigi.execution_summary import LuigiStatusCode
from luigi.task_register import Register

from devkit import sandbox
from flixluigi import CuratedTweets, config
from flixluigi.curation import curator
from flixluigi.curation.curator import KEEP_ALL, Curator
from flixluigi.curation.gate import check_batch
from flixluigi.curation.privacy import _COMPAT, _IGNORABLE, RULE_VERSION, SharingOptions, normalize_text, query_terms, words
from flixluigi.curation.pseudonym import Pseudonymizer
from flixluigi.curation.schema import SCHEMA, TWEET_ID_COLUMNS
from flixluigi.errors import QualityError, SettingsError
from flixluigi.xapi.client import XClient, day_window
from tests import adversarial as adv
from tests.conftest import TIME_SCALE, TOKEN, api_url
from tests.helpers import all_strings, body, curated, is_pseudonym, keys

PSEUDO = Pseudonymizer(b"privacy-test-key-0123456789abcdef01")
WHEN = datetime(2026, 1, 1, tzinfo=UTC)
USERNAMES = [u[0] for u in adv.USERS] + [adv.SUSPENDED]
PROFILE_LINK = re.compile(r"(?:twitter|x)\.com/(?:#!/)?(?:(?!i/|intent/|hashtag/)[a-z0-9_]|i/user/[0-9])")
EMAIL = re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}")


def curate_pages(pages: list[dict], sharing: SharingOptions = KEEP_ALL) -> pa.Table:
    """Every batch through the gate, as the task does."""
    curator = Curator(adv.DAY, PSEUDO, WHEN, sharing=sharing, query=adv.QUERY)
    batches = []
    for batch in curator.batches(pages):
        check_batch(batch, curator.stats)
        batches.append(batch)
    return pa.Table.from_batches(batches, SCHEMA)


def metadata_strings(table: pa.Table) -> list[str]:
    """Schema metadata and every Parquet footer string (key-value metadata, column statistics)."""
    sink = io.BytesIO()
    pq.write_table(table, sink)
    meta = pq.ParquetFile(pa.BufferReader(sink.getvalue())).metadata
    found = [str(v) for kv in (table.schema.metadata or {}).items() for v in kv]
    found += [str(v) for kv in (meta.metadata or {}).items() for v in kv]
    for group in range(meta.num_row_groups):
        for column in range(meta.num_columns):
            stats = meta.row_group(group).column(column).statistics
            if stats is not None and stats.has_min_max:
                found += [str(stats.min), str(stats.max)]
    return found


def leaks(strings: list[str]) -> list[tuple[str, str]]:
    """Every (what, where) the contract forbids, found independently of the scrubber's own passes."""
    found = []
    for value in strings:
        low = normalize_text(value).lower()
        tokens, runs = set(words(low)), set(re.findall(r"[0-9]+", low))
        found += [(f"@{name}", value) for name in USERNAMES if "@" + name.lower() in low]
        found += [(name, value) for name in adv.HIDDEN_NAMES if name.lower() in tokens]
        found += [(uid, value) for uid in adv.HIDDEN_IDS if uid in runs]
        found += [(name, value) for name in adv.HIDDEN_DISPLAY
                  if re.search(r"(?<!\w)" + r"\W+".join(words(name)) + r"(?!\w)", low)]
        found += [("profile link", value) for _ in PROFILE_LINK.finditer(low)]
        found += [("e-mail", value) for _ in EMAIL.finditer(low)]
    return found


def assert_clean(table: pa.Table) -> None:
    assert not leaks(all_strings(table) + metadata_strings(table))
    texts = " ".join(v for v in table.column("text").to_pylist() if v)
    assert all(kept in texts for kept in adv.KEPT)
    assert len(table.column("text").to_pylist()) == table.num_rows == 15


def test_the_corpus_really_hides_identities():
    """The scan finds every planted form in the raw pages: a clean result below means something."""
    pages = adv.pages()
    raw = [t["text"] for p in pages for t in p["data"]] + [t["note_tweet"]["text"] for p in pages for t in p["data"]
                                                          if "note_tweet" in t]
    raw += [t["source"] for p in pages for t in p["data"]]
    raw += [u.get("location", "") for u in pages[0]["includes"]["users"]]
    found = {what.lstrip("@") for what, _ in leaks(raw)}
    assert set(adv.HIDDEN_NAMES) - {"qdisp_user", "mia_userid"} <= found  # their display name, their id
    assert {"profile link", "e-mail", "Quentin Displayname", "Carol Watcher", adv.UNKNOWN_ID} <= found


def test_adversarial_day_curated_directly_is_clean():
    table = curate_pages(adv.pages())
    assert_clean(table)
    rows = {r["tweet_id"]: r for r in table.to_pylist()}
    long_post = next(r for r in rows.values() if r["text"].startswith("#FlixBus from Berlin"))
    assert long_post["text"].endswith(f" @{PSEUDO(adv.USERS[2][1])}, [user] and [name] too")  # past the 280th character
    hashtags = {h for r in rows.values() for h in r["hashtags"]}
    assert "flixbus" in hashtags and "[user]" in hashtags and "ivyhashtag" not in hashtags
    assert "[user].github.io" in {d for r in rows.values() for d in r["url_domains"]}
    by_author = {r["source"]: r for r in rows.values()}
    assert by_author["[user]'s bot"]["text"].startswith("#[user] and #[user] ride #FlixBus with @k")
    assert {r["author_location"] for r in rows.values()} >= {
        "home of [user]", "Hell | [email]", f"@{PSEUDO(adv.USERS[0][1])} fan club", "uid[user]", "[email]",
        "x.com/[user] and mobile.twitter.com/[user]"}


def test_scrubbed_text_keeps_the_content_around_identities():
    texts = set(curate_pages(adv.pages()).column("text").to_pylist())
    assert "Ordinary #FlixBus trip to Prag, ev charging at the stop" in texts  # untouched, byte for byte
    assert "thanks [user] for nothing #FlixBus" in texts  # a suspended user, known from errors[] only
    assert f"RT@{PSEUDO(adv.USERS[9][1])}: #FlixBus late again, says x_@{PSEUDO(adv.USERS[10][1])}" in texts
    assert ("see https://mobile.twitter.com/[user]/status/123 and https://x.com/[user] #FlixBus") in texts
    assert ("profile twitter.com/i/user/[user] and mobile.x.com/[user], "
            "https://twitter.com/intent/user?screen_name=[user] #FlixBus") in texts
    assert "[[user]] ([user]) <[user]> [user]'s #FlixBus" in texts
    assert "write to [email] or [email] #FlixBus" in texts
    assert "met [name] and [name] on the #FlixBus" in texts
    assert f"@{PSEUDO(adv.USERS[3][1])} and @[user] ride #FlixBus" in texts  # longer than 15: the whole run goes


def test_adversarial_day_through_the_sandbox_and_the_real_client(tmp_path):
    replay = sandbox.start(token=TOKEN, replay=(adv.write(tmp_path / "adversarial.jsonl"),))
    try:
        client = XClient(api_url(replay), TOKEN, backoff_factor=0.01)
        pages = [page.body for page in client.search(adv.QUERY, day_window(adv.DAY, "all"), max_results=100)]
    finally:
        replay.shutdown()
    assert len(pages) == 3 and pages[1]["errors"][0]["value"] == adv.SUSPENDED
    assert_clean(curate_pages(pages))


def test_adversarial_day_through_the_real_tasks(pipeline, tmp_path):
    replay = sandbox.start(token=TOKEN, replay=(adv.write(tmp_path / "adversarial.jsonl"),), time_scale=TIME_SCALE)
    try:
        pipeline.set("xapi", "base_url", api_url(replay))
        result = luigi.build([CuratedTweets(adv.DAY)], local_scheduler=True, detailed_summary=True, workers=1)
        assert result.scheduling_succeeded, result.summary_text
    finally:
        replay.shutdown()
    endpoint = pipeline.seaweed.endpoint
    assert_clean(curated(endpoint, pipeline.run, adv.DAY))
    # Nothing in the table's metadata either: the Delta log (commits, checkpoints, column statistics)
    # and every data file's footer.
    stored = keys(endpoint, f"{pipeline.run}/curated/tweets/")
    log_text = [body(endpoint, key).decode("utf-8", "replace") for key in stored if "/_delta_log/" in key and key.endswith(".json")]
    footers = [s for key in stored if key.endswith(".parquet")
               for s in metadata_strings(pq.read_table(pa.BufferReader(body(endpoint, key))))]
    assert log_text and footers
    assert leaks(log_text + footers) == []


def test_names_are_known_from_the_whole_day_before_any_text_is_scrubbed(monkeypatch):
    """One page per batch: a user learned on an earlier page is scrubbed in a later one, and a bare
    name on a page before the one that introduces its user too (the day is learned first)."""
    monkeypatch.setattr(curator, "PAGES_PER_GROUP", 1)
    pages = adv.pages()
    late = {"id": "1569000000000000001", "created_at": "2022-09-12T00:30:00.000Z", "author_id": "1600000000000000001",
            "text": "bobhidden again, and latecomer_zed", "lang": "en"}
    late_page = {"data": [late], "includes": {"users": [{"id": "1600000000000000001", "username": "latecomer_zed"}]},
                 "meta": {"result_count": 1}}
    early = {"data": [{**late, "id": "1569000000000000002", "text": "latecomer_zed before his page"}],
             "meta": {"result_count": 1}}
    texts = curate_pages([early, *pages, late_page]).column("text").to_pylist()
    assert texts[0] == "[user] before his page"
    assert texts[-1] == "[user] again, and [user]"


def test_a_username_named_like_the_query_or_short_stays_as_a_word():
    assert query_terms("#FlixBus OR @FlixBus -is:retweet") >= {"flixbus"}
    curator = Curator(adv.DAY, PSEUDO, WHEN, query=adv.QUERY)
    page = {"data": [{"id": "1", "created_at": "2022-09-12T10:00:00.000Z", "author_id": "22222222",
                      "text": "FlixBus #FlixBus flixbus @FlixBus ev @ev", "lang": "en"}],
            "includes": {"users": [{"id": "22222222", "username": "FlixBus"}, {"id": "12", "username": "ev"}]},
            "meta": {}}
    batch = next(curator.batches([page]))
    check_batch(batch, curator.stats)
    assert batch.column("text").to_pylist() == [f"FlixBus #FlixBus flixbus @{PSEUDO('22222222')} ev @{PSEUDO('12')}"]


def _leaky(column: str, value: str) -> tuple[pa.RecordBatch, Curator]:
    curator = Curator(adv.DAY, PSEUDO, WHEN, query=adv.QUERY)
    batch = next(curator.batches(adv.pages()))
    index = SCHEMA.get_field_index(column)
    values = batch.column(column).to_pylist()
    values[4] = value
    return batch.set_column(index, column, pa.array(values, SCHEMA.field(column).type)), curator


@pytest.mark.parametrize(("column", "value", "form", "remedy"), [
    ("text", "hello bobhidden", "a username as a word", "set [sharing] text = drop"),
    ("author_location", "see x.com/someone", "a profile link", "set [sharing] author_location = drop"),
    ("source", "mail bob@example.com", "an e-mail address", "report it"),
    ("lang", "@jackrt", "an @username", "report it"),
    ("text", "id 1500000000000000013", "a raw user id", "report it"),
])
def test_gate_names_column_row_form_and_a_remedy_that_works(column, value, form, remedy):
    batch, curator = _leaky(column, value)
    with pytest.raises(QualityError) as caught:
        check_batch(batch, curator.stats)
    message = str(caught.value)
    assert f"column {column}, row 4 of the day still holds {form}" in message and remedy in message
    assert "re-fetch" not in message.replace("re-fetching cannot help", "") and "\n" not in message
    assert value.split()[-1] not in message  # the message never repeats the identity


def test_gate_ignores_display_names_and_checks_tweet_id_columns():
    batch, curator = _leaky("text", "Quentin Displayname again")
    check_batch(batch, curator.stats)  # a display name never blocks a day
    clash = batch.set_column(0, "tweet_id", pa.array(["1500000000000000001"] * batch.num_rows))
    with pytest.raises(QualityError, match=r"tweet id equal to a raw user id of the day; set \[sharing\] tweet_ids"):
        check_batch(clash, curator.stats)


def test_sharing_pseudonymises_tweet_ids_in_their_own_domain():
    kept = curate_pages(adv.pages())
    shared = curate_pages(adv.pages(), SharingOptions(tweet_ids="pseudonymise"))
    for name in ("tweet_id", "conversation_id", "edit_chain_id"):
        assert all(is_pseudonym(v) for v in shared.column(name).to_pylist())
        assert shared.column(name).to_pylist() == [PSEUDO.tweet(v) for v in kept.column(name).to_pylist()]
    refs = [v for row in shared.column("referenced_tweet_ids").to_pylist() for v in row]
    assert refs == [PSEUDO.tweet("1568000000000000001")]
    assert PSEUDO.tweet("12") != PSEUDO("12") and PSEUDO.tweet("12") == PSEUDO.tweet("12")
    history = [v for row in shared.column("edit_history_tweet_ids").to_pylist() for v in row]
    assert history and all(is_pseudonym(v) for v in history)
    assert shared.drop(list(TWEET_ID_COLUMNS)).equals(kept.drop(list(TWEET_ID_COLUMNS)))


@pytest.mark.parametrize("option", ["text", "author_location"])
def test_sharing_drops_text_or_location(option):
    table = curate_pages(adv.pages(), SharingOptions(**{option: "drop"}))
    assert table.column(option).null_count == table.num_rows
    other = "author_location" if option == "text" else "text"
    assert table.column(other).null_count < table.num_rows
    assert table.schema.equals(SCHEMA, check_metadata=False)


def test_sharing_fingerprint_is_short_stable_and_says_each_option():
    assert SharingOptions().fingerprint == f"p{RULE_VERSION}-kkk"
    assert SharingOptions("pseudonymise", "drop", "drop").fingerprint == f"p{RULE_VERSION}-pdd"
    assert len({SharingOptions(t, x, loc).fingerprint for t in ("keep", "pseudonymise")
                for x in ("keep", "drop") for loc in ("keep", "drop")}) == 8
    with pytest.raises(ValueError, match=r"\[sharing\] text = 'hide' is not one of keep, drop; fix it in luigi.cfg"):
        SharingOptions(text="hide")  # type: ignore[arg-type]


def test_normalisation_tables_cover_every_compatibility_form_of_ascii():
    """Every character whose NFKC form holds an ASCII letter, digit or URL/e-mail mark, and every
    default-ignorable one, makes a value go through NFKC (checked against this Python's Unicode)."""
    covered = [range(lo, hi + 1) for lo, hi in _COMPAT + _IGNORABLE]
    missing = [hex(c) for c in range(0x80, 0x110000)
               if (n := unicodedata.normalize("NFKC", chr(c))) != chr(c)
               and any(x.isascii() and (x.isalnum() or x in "@._-:/#%+=&?!") for x in n)
               and not any(c in r for r in covered) and c != 0x2026]  # the ellipsis: three dots are no identifier
    assert not missing
    assert normalize_text("\uff20Bob\u200bHidden") == "@BobHidden"


def test_sharing_section_is_read_and_checked():
    cfg = luigi.configuration.get_config()
    cfg.add_section("sharing")
    try:
        cfg.set("sharing", "tweet_ids", "pseudonymise")
        Register.clear_instance_cache()
        section = config.sharing()
        assert SharingOptions(section.tweet_ids, section.text, section.author_location).fingerprint == f"p{RULE_VERSION}-pkk"
        cfg.set("sharing", "text", "hide")
        Register.clear_instance_cache()
        with pytest.raises(SettingsError, match=r"\[sharing\] text = 'hide' must be one of drop, keep"):
            config.check_settings()
    finally:
        cfg.remove_section("sharing")
        Register.clear_instance_cache()


def test_hidden_users_are_scrubbed_as_bare_words_from_every_source():
    """Users no page includes, known only from @handles and errors[] (value, detail), go as bare
    words too, on pages before the one that names them; a tweet id of errors[] stays."""
    texts = curate_pages(adv.hidden_users_pages()).column("text").to_pylist()
    assert texts == ["[user] got banned, and [user] too #FlixBus", "[user] said [user] was on the #FlixBus",
                     "@[user] where are you? [user] got banned #FlixBus", "no word from @[user] today #FlixBus",
                     "the last #FlixBus of the day, with @[user]"]
    joined = " ".join(texts).lower()
    assert not any(name in joined for name in adv.HIDDEN_DAY_USERS)
    assert all(kept.lower() in joined for kept in adv.HIDDEN_DAY_KEPT)


def test_hidden_users_day_through_the_real_tasks(pipeline, tmp_path):
    path = tmp_path / "hidden.jsonl"
    path.write_text("".join(json.dumps(page) + "\n" for page in adv.hidden_users_pages()))
    replay = sandbox.start(token=TOKEN, replay=(path,), time_scale=TIME_SCALE)
    try:
        pipeline.set("xapi", "base_url", api_url(replay))
        result = luigi.build([CuratedTweets(adv.DAY)], local_scheduler=True, detailed_summary=True, workers=1)
        assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    finally:
        replay.shutdown()
    texts = " ".join(curated(pipeline.seaweed.endpoint, pipeline.run, adv.DAY).column("text").to_pylist()).lower()
    assert not any(name in texts for name in adv.HIDDEN_DAY_USERS) and "#flixbus" in texts
