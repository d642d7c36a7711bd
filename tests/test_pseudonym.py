from pathlib import Path

import pytest

from flixluigi.curation.pseudonym import Pseudonymizer, load_key
from flixluigi.errors import HmacKeyError
from tests.helpers import is_pseudonym

KEY = b"k" * 32


def test_same_user_same_key_same_pseudonym_and_well_formed():
    a, b = Pseudonymizer(KEY), Pseudonymizer(KEY)
    assert a("12345") == b("12345")
    assert a("12345") != a("12346")
    assert is_pseudonym(a("12345")) and a("12345").startswith(a.key_id + ":")
    assert a(None) is None


def test_another_key_gives_unrelated_pseudonyms_and_key_id():
    a, b = Pseudonymizer(KEY), Pseudonymizer(b"z" * 32)
    assert a.key_id != b.key_id
    assert a("12345").split(":")[1] != b("12345").split(":")[1]


def test_raw_ids_are_not_pseudonyms():
    assert not is_pseudonym("1379899464345923590")
    assert not is_pseudonym("kdeadbeef:short")


def test_key_from_env_or_file(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("K", "x" * 40)
    assert load_key("K") == b"x" * 40
    monkeypatch.delenv("K")
    key_file = tmp_path / "key"
    key_file.write_bytes(b"y" * 32 + b"\n")
    assert load_key("K", str(key_file)) == b"y" * 32


@pytest.mark.parametrize("env, file_content, message", [
    (None, None, "no HMAC key: set $K"),
    ("short", None, "is 5 bytes, needs at least 32"),
    (None, b"\n", "is 0 bytes, needs at least 32"),
    (None, "missing", "cannot be read"),
])
def test_bad_keys_are_refused_with_one_line(monkeypatch, tmp_path, env, file_content, message):
    monkeypatch.delenv("K", raising=False)
    if env:
        monkeypatch.setenv("K", env)
    key_file = ""
    if file_content == "missing":
        key_file = str(tmp_path / "nope")
    elif file_content is not None:
        (tmp_path / "key").write_bytes(file_content)
        key_file = str(tmp_path / "key")
    with pytest.raises(HmacKeyError) as exc:
        load_key("K", key_file)
    assert message in str(exc.value) and "\n" not in str(exc.value)
