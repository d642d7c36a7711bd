"""Deterministic synthetic #FlixBus tweets for any UTC day.

The same seed and day always give the same tweets, users and ids, so tests can compare a
pipeline run with what the sandbox serves. Objects carry every field the real API can return;
the server trims them to the fields a request asks for.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

TWITTER_EPOCH_MS = 1288834974657
USER_POOL = 5000
# Impression counts appeared in the v2 payloads in December 2022; older days never carry them.
IMPRESSIONS_SINCE = date(2022, 12, 15)

SYLLABLES = ("ka", "lo", "mi", "ber", "tan", "fe", "ri", "no", "sa", "vu", "zel", "ox", "pa", "du", "len")
FIRST = ("Anna", "Jonas", "Marie", "Luca", "Sofia", "Mateusz", "Chloé", "Pedro", "Emre", "Ingrid", "Kofi", "Yuki")
LAST = ("Müller", "Rossi", "Nowak", "Dubois", "García", "Jansen", "Yılmaz", "Berg", "Novák", "Silva")
LOCATIONS = (
    "Berlin, Germany", "München", "Paris, France", "Milano", "Praha", "Warszawa", "Amsterdam",
    "Wien, Österreich", "Barcelona", "Zürich", "København", "Lisboa", "Kraków", "Hamburg", "", None,
)
ROUTES = ("Berlin", "Prag", "Paris", "Lyon", "München", "Wien", "Amsterdam", "Milano", "Kraków", "Zagreb")
TEMPLATES = {
    "de": ("Mit #FlixBus von {a} nach {b}, {n} Minuten Verspätung {e}", "Danke #FlixBus, pünktlich in {b} angekommen {e}",
           "Der #FlixBus nach {b} hat WLAN, aber keine Steckdose {e}"),
    "en": ("Taking the #FlixBus from {a} to {b} today {e}", "{n} minutes late again, #FlixBus? {e}",
           "Cheapest way to {b}: #FlixBus {e} #travel"),
    "fr": ("En #FlixBus de {a} à {b}, {n} minutes de retard {e}", "Merci #FlixBus pour ce trajet vers {b} {e}"),
    "it": ("Viaggio in #FlixBus da {a} a {b} {e}", "#FlixBus in ritardo di {n} minuti {e}"),
    "pl": ("Jadę #FlixBus z {a} do {b} {e}", "#FlixBus spóźniony {n} minut {e}"),
    "es": ("Rumbo a {b} en #FlixBus {e}", "El #FlixBus llegó con {n} minutos de retraso {e}"),
}
LANG_WEIGHTS = (("de", 35), ("en", 30), ("fr", 10), ("it", 9), ("pl", 8), ("es", 8))
EMOJI = ("🚌", "😴", "🙄", "👍", "💚", "😡", "🎉", "", "")
DOMAINS = ("global.flixbus.com", "www.flixbus.de", "instagram.com", "www.youtube.com", "t.me")
SOURCES = ("Twitter for Android", "Twitter for iPhone", "Twitter Web App", "TweetDeck")
KINDS = (("original", 60), ("reply", 15), ("retweet", 15), ("quoted", 10))


def snowflake(ms: int, seq: int) -> int:
    """An id ordered like the real ones: milliseconds since the Twitter epoch, then a sequence."""
    return ((ms - TWITTER_EPOCH_MS) << 22) | (seq & 0x3FFFFF)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _weighted(rng: random.Random, pairs: tuple) -> str:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


@lru_cache(maxsize=4)
def user_pool(seed: int) -> tuple[dict, ...]:
    """Users shared by every day, so the same people tweet on many days."""
    rng = random.Random(f"users:{seed}")
    base = int(datetime(2009, 1, 1, tzinfo=UTC).timestamp() * 1000)
    users = []
    for i in range(USER_POOL):
        created = base + rng.randrange(0, 13 * 365 * 86400) * 1000
        handle = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))) + str(rng.randrange(10, 9999))
        followers = int(rng.paretovariate(1.2) * 20)
        users.append({
            "id": str(snowflake(created, i) if created > TWITTER_EPOCH_MS else 10_000_000 + i * 7919),
            "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            "username": handle,
            "created_at": iso(created),
            "description": f"Reist gern {rng.choice(EMOJI)}" if rng.random() < 0.6 else "",
            "location": rng.choice(LOCATIONS),
            "verified": rng.random() < 0.02,
            "protected": False,
            "profile_image_url": f"https://pbs.twimg.com/profile_images/{1000 + i}/{handle}_normal.jpg",
            "url": "",
            "public_metrics": {"followers_count": followers, "following_count": rng.randrange(0, 3000),
                               "tweet_count": rng.randrange(1, 60000), "listed_count": rng.randrange(0, 50)},
        })
    return tuple(users)


# Posts as they are since the 2022/2023 changes: edits (a new id per version, up to 5 within 30
# minutes; every version lists the whole chain, oldest first; replies to others and reposts cannot
# be edited) for posts from 2022-09-29, when edit metadata began, and long posts (note_tweet,
# `text` cut at 280) from 2023-02-08, when they arrived.
EDITS_SINCE, LONG_POSTS_SINCE = date(2022, 9, 29), date(2023, 2, 8)
LONG_SHARE, EDITED_SHARE = 0.06, 0.05
TEXT_LIMIT = 280
EDIT_WINDOW_MS = 30 * 60_000
LONG_TAIL = (" Langer Bericht: der Bus kam an, die Fahrt ging weiter, und an jeder Haltestelle stiegen mehr Leute ein"
             " als aus. Das WLAN hielt bis zur Grenze, danach nur noch Funklöcher und Landschaft.")


@dataclass(frozen=True)
class Day:
    """One day's tweets, newest first, and the tweets they reference.

    `spill` holds edits of the day's posts that were made after midnight: they belong to the next day.
    """

    tweets: tuple[dict, ...]
    referenced: dict[str, dict]
    users: dict[str, dict]
    spill: tuple[dict, ...] = ()


def _pick_user(rng: random.Random, pool: tuple[dict, ...]) -> dict:
    # Skewed towards the front of the pool: a few heavy tweeters, a long tail.
    return pool[int(len(pool) * rng.random() ** 3)]


def _entities(text: str, mentions: list[dict], urls: list[tuple[str, str]]) -> dict:
    ents: dict = {}
    tags = []
    pos = 0
    while (pos := text.find("#", pos)) != -1:
        end = pos + 1
        while end < len(text) and (text[end].isalnum() or text[end] == "_"):
            end += 1
        if end > pos + 1:
            tags.append({"start": pos, "end": end, "tag": text[pos + 1:end]})
        pos = end
    if tags:
        ents["hashtags"] = tags
    if mentions:
        ents["mentions"] = [{"start": text.find("@" + m["username"]), "end": text.find("@" + m["username"]) + len(m["username"]) + 1,
                             "username": m["username"], "id": m["id"]} for m in mentions]
    if urls:
        ents["urls"] = [{"start": text.find(short), "end": text.find(short) + len(short), "url": short,
                         "expanded_url": full, "display_url": full.split("//", 1)[1][:25]} for short, full in urls]
    return ents


def _text(rng: random.Random, lang: str) -> str:
    a, b = rng.sample(ROUTES, 2)
    return rng.choice(TEMPLATES[lang]).format(a=a, b=b, n=rng.randrange(5, 240), e=rng.choice(EMOJI)).strip()


def _metrics(rng: random.Random, day: date) -> dict:
    m = {"retweet_count": int(rng.paretovariate(2) - 1), "reply_count": rng.randrange(0, 4),
         "like_count": int(rng.paretovariate(1.5) - 1), "quote_count": rng.randrange(0, 2)}
    if day >= IMPRESSIONS_SINCE:
        m["impression_count"] = rng.randrange(10, 20000)
    return m


def _referenced_tweet(rng: random.Random, ms: int, seq: int, pool: tuple[dict, ...], day: date) -> tuple[dict, dict]:
    author = _pick_user(rng, pool)
    lang = _weighted(rng, LANG_WEIGHTS)
    text = _text(rng, lang)
    tid = str(snowflake(ms, seq))
    return {"id": tid, "text": text, "edit_history_tweet_ids": [tid], "author_id": author["id"], "created_at": iso(ms),
            "lang": lang, "conversation_id": tid, "public_metrics": _metrics(rng, day), "possibly_sensitive": False,
            "reply_settings": "everyone", "source": rng.choice(SOURCES), "entities": _entities(text, [], [])}, author


def _tweet(rng: random.Random, ms: int, seq: int, pool: tuple[dict, ...], day: date, referenced: dict) -> dict:
    author = _pick_user(rng, pool)
    lang = _weighted(rng, LANG_WEIGHTS)
    kind = _weighted(rng, KINDS)
    tid = str(snowflake(ms, seq))
    mentions = [_pick_user(rng, pool) for _ in range(rng.choice((0, 0, 0, 1, 1, 2)))]
    urls = []
    text = _text(rng, lang)
    if rng.random() < 0.3:
        short = f"https://t.co/{rng.randrange(36 ** 9):09x}"[:23]
        urls.append((short, f"https://{rng.choice(DOMAINS)}/{rng.randrange(10 ** 6)}"))
        text = f"{text} {short}"
    if mentions:
        text = " ".join("@" + m["username"] for m in mentions) + " " + text
    tweet = {"id": tid, "edit_history_tweet_ids": [tid], "author_id": author["id"], "created_at": iso(ms), "lang": lang,
             "conversation_id": tid, "public_metrics": _metrics(rng, day), "possibly_sensitive": rng.random() < 0.01,
             "reply_settings": "everyone", "source": rng.choice(SOURCES)}
    if kind != "original":
        ref, ref_author = _referenced_tweet(rng, ms - rng.randrange(60_000, 5 * 86_400_000), seq, pool, day)
        referenced[ref["id"]] = ref
        tweet["referenced_tweets"] = [{"type": {"reply": "replied_to", "retweet": "retweeted"}.get(kind, kind), "id": ref["id"]}]
        if kind == "reply":
            tweet["in_reply_to_user_id"] = ref["author_id"]
            tweet["conversation_id"] = ref["conversation_id"]
            mentions.insert(0, ref_author)
            text = f"@{ref_author['username']} {text}"
        elif kind == "retweet":
            mentions = [ref_author]
            urls = []
            text = f"RT @{ref_author['username']}: {ref['text']}"[:140]
        else:
            short = f"https://t.co/q{int(ref['id']) % 10 ** 8:08d}"
            urls.append((short, f"https://twitter.com/i/web/status/{ref['id']}"))
            text = f"{text} {short}"
    tweet["text"] = text
    tweet["entities"] = _entities(text, mentions, urls)
    return tweet


def _make_long(tweet: dict) -> None:
    """The full text goes to note_tweet; `text` keeps its first 280 characters, as the API serves it."""
    full = tweet["text"]
    while len(full) <= TEXT_LIMIT:
        full += LONG_TAIL
    tweet["note_tweet"] = {"text": full, "entities": _entities(full, [], [])}
    tweet["text"] = full[:TEXT_LIMIT]


def _edits(rng: random.Random, tweet: dict) -> list[dict]:
    """The original and 1-3 later versions, each with its own id, all listing the chain oldest first."""
    ms = int(tweet["id"]) >> 22
    seq = int(tweet["id"]) & 0x3FFFFF
    offsets = sorted(rng.sample(range(60_000, EDIT_WINDOW_MS), rng.randint(1, 3)))
    versions = [tweet]
    for number, offset in enumerate(offsets, 1):
        version = {**tweet, "id": str(((ms + offset) << 22) | (seq | 0x200000)),
                   "created_at": iso(ms + offset + TWITTER_EPOCH_MS), "text": f"{tweet['text']} (edit {number})"[:TEXT_LIMIT]}
        if "note_tweet" in tweet:
            full = f"{tweet['note_tweet']['text']} (edit {number})"
            version["note_tweet"] = {"text": full, "entities": _entities(full, [], [])}
            version["text"] = full[:TEXT_LIMIT]
        versions.append(version)
    chain = [v["id"] for v in versions]
    for version in versions:
        version["edit_history_tweet_ids"] = chain
    return versions


def _with_2026_posts(base: Day, day: date, seed: int) -> Day:
    """Some originals become long posts, some posts get edited; ids stay ordered by time."""
    rng = random.Random(f"2026:{seed}:{day.isoformat()}")
    end = iso(int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000) + 86_400_000)
    posts: list[dict] = []
    for tweet in base.tweets:
        tweet = dict(tweet)
        kinds = {r["type"] for r in tweet.get("referenced_tweets", ())}
        if day >= LONG_POSTS_SINCE and not kinds and rng.random() < LONG_SHARE:
            _make_long(tweet)
        editable = day >= EDITS_SINCE and kinds <= {"quoted"}
        posts.extend(_edits(rng, tweet) if editable and rng.random() < EDITED_SHARE else [tweet])
    posts.sort(key=lambda t: int(t["id"]), reverse=True)
    return Day(tweets=tuple(t for t in posts if t["created_at"] < end), referenced=base.referenced, users=base.users,
               spill=tuple(t for t in posts if t["created_at"] >= end))


@lru_cache(maxsize=8)
def generate_day(day: date, volume: int, seed: int, modern: bool = True) -> Day:
    """`volume` posts (give or take 20 %, fixed per day) spread over the UTC day; `modern` adds long posts
    and edited versions (False: the posts as the API served them before 2023)."""
    base = _legacy_day(day, volume, seed)
    return _with_2026_posts(base, day, seed) if modern else base


def _legacy_day(day: date, volume: int, seed: int) -> Day:
    rng = random.Random(f"day:{seed}:{day.isoformat()}")
    pool = user_pool(seed)
    count = max(0, int(volume * rng.uniform(0.8, 1.2))) if volume else 0
    start_ms = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
    times = sorted((start_ms + rng.randrange(86_400_000) for _ in range(count)), reverse=True)
    referenced: dict[str, dict] = {}
    tweets = tuple(_tweet(rng, ms, i, pool, day, referenced) for i, ms in enumerate(times))
    users = {u["id"]: u for u in pool}
    return Day(tweets=tweets, referenced=referenced, users=users)


def newest_versions(posts: tuple[dict, ...]) -> tuple[dict, ...]:
    """The posts a curated day keeps: of each edit chain the version with the largest id, in the given order."""
    newest: dict[str, int] = {}
    for post in posts:
        chain = min(post["edit_history_tweet_ids"], key=int)
        newest[chain] = max(newest.get(chain, 0), int(post["id"]))
    return tuple(p for p in posts if int(p["id"]) == newest[min(p["edit_history_tweet_ids"], key=int)])


def days_between(start: datetime, end: datetime) -> list[date]:
    """The UTC days that overlap [start, end)."""
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)] if end > start else []
