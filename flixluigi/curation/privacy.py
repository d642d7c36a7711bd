"""The one rule for user identities in curated values: the scrubber, the gate and the tests use it.

A value is read as the rule sees it (`normalize`): invisible characters removed, then NFKC, so a
handle in full-width letters or with a zero-width space inside reads as the plain handle. Then,
case-insensitively, in this order, left to right:

- an e-mail address, whoever it belongs to, becomes `[email]`;
- `@` followed by letters, digits or `_` (after any character, `RT@name` included, however long the
  run) becomes `@<pseudonym>` when the day knows the user, else `@[user]`;
- a profile link on twitter.com, x.com or their www./mobile./m. hosts (`x.com/<name>`,
  `twitter.com/i/user/<id>`, `screen_name=`/`user_id=` parameters) keeps its host, the user becomes `[user]`;
- a display name of a user of the day, of two words or more, becomes `[name]` (best effort);
- a username of the day standing as a whole word (`#name`, `name's`, `home of name`) becomes `[user]`;
- a run of 6 or more digits equal to a user id of the day becomes `[user]`.

Words are runs of letters, digits and `_`. Bare words (no `@`, no link) are matched only from
MIN_BARE_NAME characters on, and never when on the allowlist, which holds the query's own words:
an account named like the hashtag must not remove `#FlixBus` from every post.

Vectorised: Arrow normalises only values with such characters, finds the values that can hold
anything (an `@`, a link, 6 digits, a word of the day), and Python rewrites those alone.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

# 2: the day's identities come from every source (@handles in any text, errors[] details) before any text is scrubbed.
RULE_VERSION = 2
MIN_BARE_NAME = 5  # shorter usernames are ordinary words too often (ev, jack, anna) to match without an @
MIN_NAME_KEY = 3  # a display name is found through its longest word, which needs this many characters
MIN_ID_DIGITS = 6  # shorter digit runs are ordinary numbers
USER, NAME, EMAIL = "[user]", "[name]", "[email]"
UNKNOWN_HANDLE = "@" + USER

# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties): zero-width and other invisible characters.
_IGNORABLE = ((0xAD, 0xAD), (0x34F, 0x34F), (0x61C, 0x61C), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
              (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F),
              (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
              (0xE0000, 0xE0FFF))
# Characters whose NFKC form holds ASCII letters, digits or URL/e-mail punctuation (full-width,
# mathematical, circled, superscript letters...), plus combining marks; a superset, checked by a test.
_COMPAT = ((0xAA, 0xAA), (0xB2, 0xB3), (0xB9, 0xBA), (0xBC, 0xBE), (0x132, 0x133), (0x13F, 0x140), (0x149, 0x149),
           (0x17F, 0x17F), (0x1C4, 0x1CC), (0x1F1, 0x1F3), (0x2B0, 0x2B0), (0x2B2, 0x2B3), (0x2B7, 0x2B8),
           (0x2E1, 0x2E3), (0x300, 0x36F), (0x1D2C, 0x1D65), (0x1D9C, 0x1DBB), (0x1E9A, 0x1E9A), (0x2024, 0x2025),
           (0x203C, 0x20A8), (0x2100, 0x2189), (0x2460, 0x24EA), (0x2A74, 0x2A76), (0x2C7C, 0x2C7D),
           (0x3250, 0x325F), (0x32B1, 0x32CF), (0x3358, 0x33FF), (0xA7F2, 0xA7F4), (0xFB00, 0xFB29),
           (0xFE13, 0xFE6B), (0xFF01, 0xFF5A), (0x107A5, 0x107A5), (0x1D400, 0x1D6A3), (0x1D7CE, 0x1D7FF),
           (0x1F100, 0x1F190), (0x1FBF0, 0x1FBF9))


def _re2_class(ranges: Iterable[tuple[int, int]]) -> str:
    return "[" + "".join(f"\\x{{{lo:X}}}-\\x{{{hi:X}}}" for lo, hi in ranges) + "]"


IGNORABLE_RE2 = _re2_class(_IGNORABLE)
_NEEDS_NFKC_RE2 = _re2_class(_IGNORABLE + _COMPAT)
# Arrow's prefilters: which values each Python pass below may change (besides words of the day).
_AT_RE2 = "@"
_EMAIL_RE2 = r"\S@"
_LINK_RE2 = r"(?i)(?:twitter|x)\.com/|(?:screen_name|user_id)="
_DIGITS_RE2 = rf"\d{{{MIN_ID_DIGITS}}}"
_ANY_FORM_RE2 = rf"@|(?i:twitter|x)\.com/|(?i:screen_name|user_id)=|\d{{{MIN_ID_DIGITS}}}"
_ASCII_WORD_SPLIT_RE2 = r"\W+"  # ASCII words: usernames are ASCII, display names are found by an ASCII word
_HANDLE_CHARS = "@" + string.ascii_letters + string.digits + "_"
# What the scrubber writes: taken out before the gate looks again, since `[email]` is a word too.
SCRUBBED_RE2 = r"@k[0-9a-f]{8}:[0-9a-f]{32}|@?\[(?:user|name|email)\]"

_WORD = re.compile(r"\w+")
# Paths on the profile hosts that are not users; see https://x.com/<segment>.
RESERVED_PATHS = frozenset({
    "i", "intent", "hashtag", "search", "home", "explore", "settings", "share", "messages", "notifications",
    "login", "logout", "signup", "tos", "privacy", "compose", "account", "download", "about", "jobs", "lists",
    "who_to_follow", "topics", "communities", "help", "rules", "verified", "premium"})
# The Python passes; each pattern starts with a literal or a class, so the engine skips ahead fast.
_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}")
_HANDLE = re.compile(r"@([A-Za-z0-9_]+)")
_BRACKETED = re.compile(r"\[([^\]]+)\]")
_LINK = re.compile(r"(?<![\w.@-])(?:https?://)?(?:(?:www|mobile|m)\.)?(?:twitter|x)\.com/(?:#!/)?"
                   r"(?:(?P<uid_path>i/user/)[0-9]+|(?P<segment>[A-Za-z0-9_]+))"
                   r"|(?P<param>(?<!\w)(?:screen_name|user_id)=)[A-Za-z0-9_]+", re.IGNORECASE)
_DONE = r"(?P<done>k[0-9a-f]{8}:[0-9a-f]{32}|\[(?:user|name|email)\])"  # the scrubber's own output: stepped over
_DIGIT_RUN = re.compile(rf"{_DONE}|[0-9]{{{MIN_ID_DIGITS},}}")
_DIGITS = re.compile(rf"[0-9]{{{MIN_ID_DIGITS},}}")
SEPARATOR = "\n\x00\n"  # between values rewritten in one pass; no form can span it

HITS_PER_REGEX = 200  # words of the day looked for by one Arrow regex; more at once overflow RE2's DFA
FORM_NAMES = {"email": "an e-mail address", "link": "a profile link", "handle": "an @username",
              "display": "a display name", "word": "a username as a word", "digits": "a raw user id"}
Pass = Callable[[str, list[str]], str]


def normalize(values: pa.Array) -> pa.Array:
    """Values as the rule reads them: invisible characters removed, then NFKC; the others unchanged."""
    return _normalized(values)[0]


def _normalized(values: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    """Normalised values and which of them it may have changed (None: none)."""
    odd = pc.fill_null(pc.match_substring_regex(values, _NEEDS_NFKC_RE2), False)
    if not pc.any(odd).as_py():
        return values, None
    fixed = pc.utf8_normalize(pc.replace_substring_regex(values.filter(odd), IGNORABLE_RE2, ""), "NFKC")
    return pc.replace_with_mask(values, odd, fixed), odd


def _fingerprint(values: pa.Array) -> tuple:
    """Which data an array is: its type, bounds and buffer addresses."""
    return (str(values.type), values.offset, len(values), *(b.address if b else 0 for b in values.buffers()))


def normalize_text(value: str) -> str:
    return normalize(pa.array([value], pa.string()))[0].as_py()


def words(value: str) -> list[str]:
    """The rule's words of a normalised value, lower-case."""
    return _WORD.findall(value.lower())


def handles_in(values: pa.Array) -> list[str]:
    """The distinct usernames written as @handles in the values (e-mail addresses taken out first:
    their domain is no handle); the source of hidden users, whom no user object names."""
    norm = normalize(pc.unique(values.filter(pc.fill_null(pc.match_substring(values, "@"), False))))
    found = _HANDLE.findall(_EMAIL.sub(" ", SEPARATOR.join(v for v in norm.to_pylist() if v)))
    return sorted({name.lower() for name in found})


def error_identities(details: Iterable[str | None]) -> tuple[list[str], list[str]]:
    """(usernames, user ids) named in brackets by the details of user errors ("User has been suspended: [name].")."""
    found = [item.strip() for detail in details if detail for group in _BRACKETED.findall(detail) for item in group.split(",")]
    return [f for f in found if f and not f.isdigit()], [f for f in found if f.isdigit()]


def query_terms(query: str) -> frozenset[str]:
    """The allowlist a query implies: its words, so `#FlixBus` stays whatever the day's usernames."""
    return frozenset(words(normalize_text(query)))


class Identities:
    """The raw identities of one day, as far as its pages have been read: what must not get through."""

    def __init__(self, allow: Iterable[str] = ()) -> None:
        self.allow = frozenset(a.lower() for a in allow)
        self.ids: dict[str, bool] = {}  # raw user id -> its user object (username, display name) was read
        self.names: dict[str, str | None] = {}  # lower-case username -> user id (None: seen in errors[] only)
        self.phrases: dict[str, set[tuple[str, ...]]] = {}  # longest word -> display names, as their words

    def add_ids(self, ids: Iterable[str | None]) -> None:
        for uid in ids:
            if uid:
                self.ids.setdefault(uid, False)

    def add_users(self, ids: list[str | None], names: list[str | None], display_names: list[str | None]) -> None:
        """User objects (of `includes.users`): their ids, usernames and display names."""
        self.add_names(names, ids)
        self.add_display_names(display_names)
        self.ids.update((uid, True) for uid in ids if uid)

    def add_names(self, names: Iterable[str | None], ids: Iterable[str | None]) -> None:
        """Usernames with the user id each belongs to (None when unknown); a known id is never forgotten."""
        for name, uid in zip(names, ids, strict=True):
            if name:
                key = name.lower()
                if uid or key not in self.names:
                    self.names[key] = uid

    def add_display_names(self, names: Iterable[str | None]) -> None:
        """Display names of two words or more that share no word with the allowlist and have an ASCII
        word of MIN_NAME_KEY characters or more, through which they are found (the best effort)."""
        normalised = normalize(pa.array(list(names), pa.string())).to_pylist()
        for name in normalised:
            found = tuple(words(name or ""))
            if len(found) < 2 or sum(map(len, found)) < MIN_BARE_NAME or self.allow.intersection(found):
                continue
            key = max((w for w in found if w.isascii()), key=len, default="")  # the prefilter splits ASCII words
            if len(key) >= MIN_NAME_KEY:
                self.phrases.setdefault(key, set()).add(found)

    def user_id(self, handle: str) -> str | None:
        """The id of an @handle; X links only the first 15 characters of a longer run."""
        key = handle.lower()
        return self.names.get(key) or self.names.get(key[:15])

    def is_bare_name(self, word: str) -> bool:
        """A lower-case word that is a username of the day, long enough and not on the allowlist."""
        return len(word) >= MIN_BARE_NAME and word in self.names and word not in self.allow

    def is_bare(self, word: str) -> bool:
        """A lower-case word that names a user of the day: a username, or a display name's longest word."""
        return word in self.phrases or self.is_bare_name(word)


@lru_cache(maxsize=64)
def _words_pattern(names: tuple[str, ...], phrases: tuple[tuple[str, ...], ...]) -> re.Pattern[str]:
    """Usernames and display names of the day as words; longest first, so a name that extends another wins."""
    parts = [_DONE]
    if phrases:  # words apart by anything but a word character or the separator
        parts.append("(?P<display>" + "|".join(r"[^\w\x00]+".join(map(re.escape, p))
                                               for p in sorted(phrases, key=lambda p: -sum(map(len, p)))) + r")(?!\w)")
    if names:
        parts.append(f"(?P<word>{'|'.join(map(re.escape, sorted(names, key=len, reverse=True)))})(?!\\w)")
    return re.compile("|".join(parts), re.IGNORECASE)


def _after_word(text: str, at: int) -> bool:
    return at > 0 and (text[at - 1].isalnum() or text[at - 1] == "_")


class Matcher:
    """Finds and rewrites the identities of one day in Arrow string arrays.

    What `scrub` returns is proven clean when the rule, run again over every value it rewrote,
    finds nothing (the values it left alone it has just searched); `proven` tells the gate so,
    for those very arrays, which `forget` drops at each new batch.
    """

    def __init__(self, identities: Identities, pseudonymize: Callable[[str], str | None] = lambda uid: None) -> None:
        self.identities = identities
        self.pseudonymize = pseudonymize
        self._handles_known: dict[str, str] = {}  # @handle -> @pseudonym, for handles the day knows
        self._proven: dict[tuple, pa.Array] = {}  # holding the arrays keeps their buffers from being reused

    def scrub(self, values: pa.Array) -> pa.Array:
        """Every identity replaced; values where nothing was found keep their exact original form."""
        encoded = values.dictionary_encode()  # each distinct value once: locations, sources, retweets repeat
        distinct = encoded.dictionary
        norm, normalised = _normalized(distinct)
        plan = self._plan(norm, display_names=True)
        if plan is None:
            return self._prove(values)
        mask, passes = plan
        picked = norm.filter(mask).to_pylist()
        rewritten = _apply(list(picked), passes, [])
        if normalised is not None:  # normalised for nothing: the original form stays
            originals = distinct.filter(mask)
            for k in pc.indices_nonzero(normalised.filter(mask)).to_pylist():
                if rewritten[k] == picked[k]:
                    rewritten[k] = originals[k].as_py()
        result = pc.replace_with_mask(distinct, mask, pa.array(rewritten, pa.string())).take(encoded.indices)
        changed = pa.array([new for new, seen in zip(rewritten, picked, strict=True) if new != seen], pa.string())
        return self._prove(result) if self.first_leak(changed) is None else result

    def proven(self, values: pa.Array) -> bool:
        """Is this array one that `scrub` returned and proved clean since the last `forget`?"""
        return _fingerprint(values) in self._proven

    def forget(self) -> None:
        self._proven.clear()

    def _prove(self, values: pa.Array) -> pa.Array:
        self._proven[_fingerprint(values)] = values
        return values

    def first_leak(self, values: pa.Array) -> tuple[int, str] | None:
        """(index, form) of the first value the scrubber would still change, its own output taken
        out first; display names do not count, since they never block a day."""
        encoded = pc.replace_substring_regex(values, SCRUBBED_RE2, " ").dictionary_encode()
        norm = normalize(encoded.dictionary)
        plan = self._plan(norm, display_names=False)
        if plan is None:
            return None
        mask, passes = plan
        picked = norm.filter(mask).to_pylist()
        rewritten = _apply(list(picked), passes, [])
        leaks = [k for k, (new, seen) in enumerate(zip(rewritten, picked, strict=True)) if new != seen]
        if not leaks:
            return None
        forms: list[str] = []
        _apply([picked[leaks[0]]], [(run, [True]) for run, flags in passes if flags[leaks[0]]], forms)
        index = pc.indices_nonzero(mask)[leaks[0]]
        return pc.index(encoded.indices, index).as_py(), FORM_NAMES[forms[0]]

    def _plan(self, norm: pa.Array, display_names: bool) -> tuple[pa.Array, list[tuple[Pass, list[bool]]]] | None:
        """Which normalised values can hold an identity, and which passes each of them needs."""
        mask = pc.fill_null(pc.match_substring_regex(norm, _ANY_FORM_RE2), False)
        names, phrases, holding = self._words_of_the_day(norm)
        if holding is not None:
            mask = pc.or_(mask, holding)
        if not pc.any(mask).as_py():
            return None
        picked = norm.filter(mask)

        def where(pattern: str) -> list[bool]:
            return pc.match_substring_regex(picked, pattern).to_pylist()

        passes: list[tuple[Pass, list[bool]]] = [(_emails, where(_EMAIL_RE2)), (self._handles, where(_AT_RE2)),
                                                 (_links, where(_LINK_RE2))]
        if holding is not None:
            pattern = _words_pattern(tuple(sorted(names)), tuple(sorted(phrases)) if display_names else ())
            passes.append((partial(_words, pattern), holding.filter(mask).to_pylist()))
        passes.append((self._ids, where(_DIGITS_RE2)))
        return mask, passes

    def _words_of_the_day(self, norm: pa.Array) -> tuple[set[str], set[tuple[str, ...]], pa.Array | None]:
        """The usernames and display names of the day that occur as words, and which values hold them.

        Words come from the distinct whitespace-separated pieces (values share most of theirs); a
        piece that starts with @ is a handle, a form of its own, so its word is not looked up.
        """
        pieces = pc.unique(pc.ascii_split_whitespace(norm).flatten())
        handles = pc.fill_null(pc.starts_with(pieces, "@"), False)
        if pc.any(handles).as_py():
            pieces = pc.if_else(handles, pc.utf8_ltrim(pieces, characters=_HANDLE_CHARS), pieces)
        tokens = pc.split_pattern_regex(pc.utf8_lower(pieces), _ASCII_WORD_SPLIT_RE2).flatten()
        known = self.identities
        distinct_tokens = set(pc.unique(tokens).to_pylist())
        hits = sorted(w for w in (known.names.keys() & distinct_tokens) | (known.phrases.keys() & distinct_tokens)
                      if known.is_bare(w))
        if not hits:
            return set(), set(), None
        lowered = pc.utf8_lower(norm)
        holding = pa.repeat(pa.scalar(False), len(norm))
        for start in range(0, len(hits), HITS_PER_REGEX):
            alternatives = "|".join(map(re.escape, hits[start:start + HITS_PER_REGEX]))
            found = pc.match_substring_regex(lowered, rf"(?:^|\W)(?:{alternatives})(?:\W|$)")
            holding = pc.or_(holding, pc.fill_null(found, False))
        names = {w for w in hits if known.is_bare_name(w)}
        return names, {p for w in hits for p in known.phrases.get(w, ())}, holding

    def _handles(self, text: str, forms: list[str]) -> str:
        """@handles: the user's pseudonym when the day knows the user, else a placeholder."""
        parts = _HANDLE.split(text)  # the handles at the odd places
        if len(parts) == 1:
            return text
        memo = self._handles_known
        parts[1::2] = [memo.get(name) or self._handle(name) for name in parts[1::2]]
        forms.append("handle")
        return "".join(parts)

    def _handle(self, name: str) -> str:
        uid = self.identities.user_id(name)
        if not uid:
            return UNKNOWN_HANDLE
        found = self._handles_known[name] = "@" + (self.pseudonymize(uid) or USER)
        return found

    def _ids(self, text: str, forms: list[str]) -> str:
        """Digit runs equal to a raw user id of the day; the scrubber's own pseudonyms stepped over."""
        if self.identities.ids.keys().isdisjoint(_DIGITS.findall(text)):  # the common case, without a callback a run
            return text

        def replace(match: re.Match[str]) -> str:
            if match.group("done") or match.group(0) not in self.identities.ids:
                return match.group(0)
            forms.append("digits")
            return USER

        return _DIGIT_RUN.sub(replace, text)


def _emails(text: str, forms: list[str]) -> str:
    """E-mail addresses, whoever they belong to: the local part may be a username."""
    replaced, count = _EMAIL.subn(EMAIL, text)
    forms.extend(["email"] * count)
    return replaced


def _links(text: str, forms: list[str]) -> str:
    """Profile links: the host stays, the user goes."""
    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if match.group("param"):
            kept = len(match.group("param"))
        elif match.group("uid_path"):
            kept = match.end("uid_path") - match.start()
        elif match.group("segment").lower() not in RESERVED_PATHS:
            kept = match.start("segment") - match.start()
        else:
            return whole
        forms.append("link")
        return whole[:kept] + USER

    return _LINK.sub(replace, text)


def _words(pattern: re.Pattern[str], text: str, forms: list[str]) -> str:
    """Usernames and display names of the day standing as whole words."""
    def replace(match: re.Match[str]) -> str:
        form = match.lastgroup or "done"
        if form == "done" or _after_word(text, match.start()):
            return match.group(0)
        forms.append(form)
        return NAME if form == "display" else USER

    return pattern.sub(replace, text)


def _apply(values: list[str], passes: list[tuple[Pass, list[bool]]], forms: list[str]) -> list[str]:
    """Each pass over the values it is meant for, joined into one string: one regex scan per pass."""
    for run, flags in passes:
        chosen = [k for k, flag in enumerate(flags) if flag]
        if not chosen:
            continue
        out = run(SEPARATOR.join(values[k] for k in chosen), forms).split(SEPARATOR)
        if len(out) != len(chosen):  # a value held the separator itself: one at a time
            out = [run(values[k], forms) for k in chosen]
        for k, value in zip(chosen, out, strict=True):
            values[k] = value
    return values


@dataclass(frozen=True)
class SharingOptions:
    """What a curated day shares beyond the pseudonymised users; part of the day's build identity.

    tweet_ids: `keep` the ids of tweets, conversations and referenced tweets as the API gives them,
    or `pseudonymise` them with the users' key in a separate domain (no API lookup from a row);
    text, author_location: `keep` (scrubbed) or `drop` (the column is null).
    """

    tweet_ids: Literal["keep", "pseudonymise"] = "keep"
    text: Literal["keep", "drop"] = "keep"
    author_location: Literal["keep", "drop"] = "keep"

    def __post_init__(self) -> None:
        for name, allowed in (("tweet_ids", ("keep", "pseudonymise")), ("text", ("keep", "drop")),
                              ("author_location", ("keep", "drop"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"[sharing] {name} = {getattr(self, name)!r} is not one of {', '.join(allowed)}; "
                                 "fix it in luigi.cfg")

    @property
    def fingerprint(self) -> str:
        """Short and stable, e.g. `p1-kkk`: the rule version, then tweet ids k/p, text k/d, location k/d."""
        return f"p{RULE_VERSION}-{self.tweet_ids[0]}{self.text[0]}{self.author_location[0]}"
