"""Keyed pseudonyms of user identifiers (HMAC-SHA256).

A pseudonym is `<key_id>:<digest>`: the same user under the same key gets the same pseudonym
on every day (analysts can count distinct users across days), another key gives unrelated
ones, and the key id says which key made it so rotated days can be told apart. The key id is
a fingerprint of the key itself, so rotating the key cannot forget to rotate the id.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import Path

from flixluigi.errors import HmacKeyError

MIN_KEY_BYTES = 32
DIGEST_HEX = 32  # 128 bits of the HMAC: collision-free at any realistic user count, half the bytes
PSEUDONYM_RE = re.compile(rf"^k[0-9a-f]{{8}}:[0-9a-f]{{{DIGEST_HEX}}}$")


def load_key(env_var: str, key_file: str = "") -> bytes:
    """The key from `env_var`, else from `key_file`; refuses short or empty keys."""
    value = os.environ.get(env_var, "")
    if value:
        key, origin = value.encode(), f"${env_var}"
    elif key_file:
        try:
            key, origin = Path(key_file).read_bytes().strip(), f"key file {key_file}"
        except OSError as exc:
            raise HmacKeyError(f"HMAC key file {key_file} cannot be read ({exc.strerror}); "
                            f"fix [pseudonym] key_file or set ${env_var}") from None
    else:
        raise HmacKeyError(f"no HMAC key: set ${env_var} (at least {MIN_KEY_BYTES} bytes, e.g. `openssl rand -hex 32`) "
                        "or [pseudonym] key_file; refusing to write unpseudonymised data")
    if len(key) < MIN_KEY_BYTES:
        raise HmacKeyError(f"HMAC key from {origin} is {len(key)} bytes, needs at least {MIN_KEY_BYTES} "
                        "(e.g. `openssl rand -hex 32`)")
    return key


def key_id(key: bytes) -> str:
    return "k" + hashlib.sha256(b"flixluigi-key-id\x00" + key).hexdigest()[:8]


class Pseudonymizer:
    """Maps user ids (and, for sharing, tweet ids) to pseudonyms, caching users': a day repeats them.

    `domain` separates uses of the one key: the same id hashed for another purpose (the
    compliance ledger) gives an unrelated value.
    """

    def __init__(self, key: bytes, domain: bytes = b"user:"):
        self.key_id = key_id(key)
        self._prefix = self.key_id + ":"
        self._mac = hmac.new(key, digestmod=hashlib.sha256)
        self._cache: dict[str, str] = {}
        self._domain = domain

    def __call__(self, user_id: str | None) -> str | None:
        if user_id is None:
            return None
        found = self._cache.get(user_id)
        if found is None:
            mac = self._mac.copy()
            mac.update(self._domain + user_id.encode())
            found = self._cache[user_id] = self._prefix + mac.hexdigest()[:DIGEST_HEX]
        return found

    def tweet(self, tweet_id: str | None) -> str | None:
        """A tweet id's pseudonym: the same key in a domain of its own, so it never equals a user's.
        Not cached: a tweet id comes back rarely, and a day holds a million of them."""
        if tweet_id is None:
            return None
        mac = self._mac.copy()
        mac.update(b"tweet:" + tweet_id.encode())
        return self._prefix + mac.hexdigest()[:DIGEST_HEX]
