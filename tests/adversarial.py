"""An adversarial raw day: twarc JSON Lines pages shaped like the recorded ones, hiding user
identities in every form docs/privacy.md says the curated day removes.

Each user of `USERS` is hidden somewhere; `HIDDEN` lists what the curated day must not hold, and
`KEPT` what it must keep (the query's own hashtag, short usernames as ordinary words).
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

DAY = date(2022, 9, 12)
QUERY = "#FlixBus"
ZWSP = "\u200b"
FULLWIDTH = str.maketrans({chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)})


def _bold(text: str) -> str:
    """Mathematical bold letters (U+1D41A...), which NFKC maps back to ASCII."""
    return "".join(chr(0x1D41A + ord(c) - 97) if "a" <= c <= "z" else c for c in text)


# username, id, display name, profile location
USERS = [
    ("bobhidden", "1500000000000000001", "Bob Hidden", "home of bobhidden"),
    ("alice_secret2", "1500000000000000002", "Alice Secret", "Hell | alice_secret2@gmail.com"),
    ("carolwatcher", "1500000000000000003", "Carol Watcher", "Berlin"),
    ("erinprivate1234", "1500000000000000005", "Erin Private", None),
    ("FlixBus", "22222222", "FlixBus", "Munich"),
    ("FrankFullwidth", "1500000000000000006", "Frank Fullwidth", "@bobhidden fan club"),
    ("gina_zw", "1500000000000000007", "Gina Zerowidth", "Wien"),
    ("hank_source", "1500000000000000008", "Hank Source", None),
    ("ivyhashtag", "1500000000000000009", "Ivy Hashtag", None),
    ("jackrt", "1500000000000000010", "Jack Retweeter", None),
    ("kate_letter", "1500000000000000011", "Kate Letter", None),
    ("leo_mobile", "1500000000000000012", "Leo Mobile", "x.com/leo_mobile and mobile.twitter.com/leo_mobile"),
    ("mia_userid", "1500000000000000013", "Mia Userid", "uid1500000000000000013"),
    ("nina_brackets", "1500000000000000014", "Nina Brackets", None),
    ("oscar_possessive", "1500000000000000015", "Oscar Possessive", None),
    ("paul_email", "1500000000000000016", "Paul Email", "PAUL_EMAIL@EXAMPLE.ORG"),
    ("qdisp_user", "1500000000000000017", "Quentin Displayname", None),
    ("ev", "12", "Ev", None),
    ("rita_math", "1500000000000000018", "Rita Math", None),
]
SUSPENDED = "ghostsuspended"  # known only from errors[]
UNKNOWN_ID = "1499999999999999999"  # a user no page includes

TEXTS = [  # (author, text, source)
    ("bobhidden", "Ordinary #FlixBus trip to Prag, ev charging at the stop", "Twitter for iPhone"),
    ("alice_secret2", "thanks ghostsuspended for nothing #FlixBus", "Twitter Web App"),
    ("carolwatcher", "RT@jackrt: #FlixBus late again, says x_@kate_letter", "Twitter for Android"),
    ("FrankFullwidth", "\uff20" + "FrankFullwidth".translate(FULLWIDTH) + " and @gi" + ZWSP + "na_zw on the #FlixBus", "TweetDeck"),
    ("hank_source", "#IvyHashtag and #ivyhashtag ride #FlixBus with @FlixBus and @ev", "hank_source's bot"),
    ("leo_mobile", "see https://mobile.twitter.com/leo_mobile/status/123 and https://x.com/LEO_MOBILE #FlixBus",
     "Twitter for iPhone"),
    ("leo_mobile", "profile twitter.com/i/user/" + UNKNOWN_ID + " and mobile.x.com/leo_mobile, "
     "https://twitter.com/intent/user?screen_name=carolwatcher #FlixBus", "Twitter for iPhone"),
    ("mia_userid", "my id is 1500000000000000013, see https://twitter.com/i/user/1500000000000000013 #FlixBus",
     "Twitter for Android"),
    ("nina_brackets", "[nina_brackets] (oscar_possessive) <bobhidden> oscar_possessive's #FlixBus", "Twitter Web App"),
    ("paul_email", "write to paul_email@example.org or bob.hidden+bus@mail.example.com #FlixBus", "Twitter Web App"),
    ("qdisp_user", "met Quentin Displayname and QUENTIN  displayname on the #FlixBus", "Twitter for iPhone"),
    ("rita_math", _bold("ritamath") + " is not rita, but " + _bold("rita_math") + " is #FlixBus", "Twitter for iPhone"),
    ("erinprivate1234", "@erinprivate1234tailtail and @nobody_known_at_all_here ride #FlixBus", "Twitter for iPhone"),
    ("gina_zw", "#FlixBus via https://bobhidden.github.io/trip", "Twitter for iPhone"),
]
# A long post: `text` is cut at 280 characters, the full text (with handles past it) is note_tweet.text.
LONG_TAIL = " @carolwatcher, carolwatcher and Carol Watcher too"
LONG_POST = ("#FlixBus " + "from Berlin to Prag and back again, " * 8)[:290] + LONG_TAIL

# What the curated day must never hold (checked case-insensitively after normalisation).
HIDDEN_NAMES = [u[0] for u in USERS if len(u[0]) >= 5 and u[0] != "FlixBus"] + [SUSPENDED]
HIDDEN_IDS = [u[1] for u in USERS if len(u[1]) >= 6] + [UNKNOWN_ID]  # shorter ones are ordinary numbers
HIDDEN_DISPLAY = [u[2] for u in USERS if " " in u[2]]
KEPT = ["#FlixBus", "ev charging"]


def _entities(text: str, known: dict[str, str]) -> dict:
    """Entities as X computes them: plain ASCII @mentions of users and #hashtags."""
    entities: dict = {}
    tags = [{"start": m.start(), "end": m.end(), "tag": m.group(1)} for m in re.finditer(r"#(\w+)", text)]
    mentions = [{"start": m.start(), "end": m.end(), "username": m.group(1), "id": known[m.group(1).lower()]}
                for m in re.finditer(r"(?<![\w@])@([A-Za-z0-9_]{1,15})", text) if m.group(1).lower() in known]
    urls = [{"start": m.start(), "end": m.end(), "url": f"https://t.co/a{n}b", "expanded_url": m.group(0),
             "display_url": m.group(0).split("//")[-1][:25]} for n, m in enumerate(re.finditer(r"https://\S+", text))]
    for key, items in (("hashtags", tags), ("mentions", mentions), ("urls", urls)):
        if items:
            entities[key] = items
    return entities


def _user(username: str, uid: str, name: str, location: str | None) -> dict:
    user = {"name": name, "verified": False, "description": "", "protected": False, "id": uid, "username": username,
            "profile_image_url": "https://pbs.twimg.com/profile_images/1/a_normal.jpg", "url": "",
            "created_at": "2015-11-16T17:03:41.000Z",
            "public_metrics": {"followers_count": 3, "following_count": 4, "tweet_count": 5, "listed_count": 0}}
    if location is not None:
        user["location"] = location
    return user


def pages() -> list[dict]:
    """Three pages of the day, newest first, as the search endpoint returns them."""
    known = {u[0].lower(): u[1] for u in USERS}
    users = {u[0]: _user(*u) for u in USERS}
    tweets = []
    texts = [*TEXTS, ("carolwatcher", LONG_POST, "Twitter Web App")]
    for n, (author, text, source) in enumerate(texts):
        tid = str(1569000000000000000 + (len(texts) - n) * 1000)
        tweet = {"id": tid, "edit_history_tweet_ids": [tid], "author_id": known[author.lower()],
                 "created_at": f"2022-09-12T{23 - n:02d}:00:00.000Z", "conversation_id": tid, "lang": "en",
                 "source": source, "text": text[:280], "entities": _entities(text[:280], known),
                 "possibly_sensitive": False, "reply_settings": "everyone",
                 "public_metrics": {"retweet_count": 0, "reply_count": 0, "like_count": n, "quote_count": 0}}
        if len(text) > 280:
            tweet["note_tweet"] = {"text": text, "entities": _entities(text, known)}
        if text.startswith("RT@"):
            tweet["referenced_tweets"] = [{"type": "retweeted", "id": "1568000000000000001"}]
        tweets.append(tweet)
    chunks = [tweets[:6], tweets[6:11], tweets[11:]]
    out = []
    for number, chunk in enumerate(chunks):
        authors = {t["author_id"] for t in chunk} | {m["id"] for t in chunk for m in t["entities"].get("mentions", ())}
        # Every user of the corpus is included on the first page, as an expansion of someone's would be.
        included = list(users.values()) if number == 0 else [u for u in users.values() if u["id"] in authors]
        page = {"data": chunk, "includes": {"users": included},
                "meta": {"newest_id": chunk[0]["id"], "oldest_id": chunk[-1]["id"], "result_count": len(chunk)},
                "__twarc": {"url": "https://api.twitter.com/2/tweets/search/all?query=%23FlixBus", "version": "2.10.4",
                            "retrieved_at": "2022-09-13T08:00:00+00:00"}}
        if number == 1:
            page["errors"] = [{"parameter": "entities.mentions.username", "resource_id": SUSPENDED, "value": SUSPENDED,
                               "detail": f"User has been suspended: [{SUSPENDED}].", "title": "Forbidden",
                               "resource_type": "user", "type": "https://api.twitter.com/2/problems/resource-not-found"}]
        if number < len(chunks) - 1:
            page["meta"]["next_token"] = f"token{number + 1}"
        out.append(page)
    return out


def write(path: Path) -> Path:
    path.write_text("".join(json.dumps(page) + "\n" for page in pages()), encoding="utf-8")
    return path


# A day whose users hide: none of them is in includes.users (suspended, withheld, or not expanded),
# each is named as an @handle in some text, by errors[] (value, or only a detail), and as a bare word
# elsewhere, often on a page before the one that names them.
HIDDEN_DAY_USERS = ["somebody", "withheld_wanda", "detail_only_dan", "late_handle_lu"]
HIDDEN_DAY_TEXTS = [
    "somebody got banned, and withheld_wanda too #FlixBus",  # bare names first: their handles come later
    "detail_only_dan said late_handle_lu was on the #FlixBus",
    "@somebody where are you? somebody got banned #FlixBus",
    "no word from @withheld_wanda today #FlixBus",
    "the last #FlixBus of the day, with @late_handle_lu",
]
# Ordinary words the hidden-user rule must leave: shorter than MIN_BARE_NAME, on the query, or an e-mail's domain.
HIDDEN_DAY_KEPT = ["#FlixBus", "banned", "where are you?"]


def hidden_users_pages() -> list[dict]:
    """Three pages of a day of 5 posts by one visible author; the four hidden users appear only as text and errors[]."""
    author = {"id": "1700000000000000001", "username": "visible_vic", "name": "Visible Vic"}
    tweets = [{"id": str(1569000000000000000 + (5 - n) * 1000), "edit_history_tweet_ids": [str(1569000000000000000 + (5 - n) * 1000)],
               "author_id": author["id"], "created_at": f"2022-09-12T{20 - n:02d}:00:00.000Z", "lang": "en", "text": text,
               "conversation_id": str(1569000000000000000 + (5 - n) * 1000), "public_metrics": {"like_count": n}}
              for n, text in enumerate(HIDDEN_DAY_TEXTS)]
    errors = [  # a suspended user by value; a withheld one by resource_id; one named only in the detail
        {"parameter": "entities.mentions.username", "resource_id": "somebody", "value": "somebody", "resource_type": "user",
         "detail": "User has been suspended: [somebody].", "title": "Forbidden"},
        {"parameter": "author_id", "resource_id": "1700000000000000009", "value": "1700000000000000009", "resource_type": "user",
         "detail": "User has been withheld: [1700000000000000009].", "title": "Forbidden"},
        {"parameter": "referenced_tweets.id.author_id", "resource_type": "user", "title": "Forbidden",
         "detail": "User has been suspended: [detail_only_dan]."},
        {"parameter": "referenced_tweets.id", "resource_id": "1569000000000000777", "value": "1569000000000000777",
         "resource_type": "tweet", "detail": "Could not find tweet with referenced_tweets.id: [1569000000000000777].",
         "title": "Not Found Error"},
    ]
    chunks = [tweets[:2], tweets[2:4], tweets[4:]]
    out = []
    for number, chunk in enumerate(chunks):
        page = {"data": chunk, "includes": {"users": [author]},
                "meta": {"newest_id": chunk[0]["id"], "oldest_id": chunk[-1]["id"], "result_count": len(chunk)}}
        if number == 2:
            page["errors"] = errors
        if number < len(chunks) - 1:
            page["meta"]["next_token"] = f"token{number + 1}"
        out.append(page)
    return out
