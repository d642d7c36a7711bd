"""What scrubbing hidden users as bare words costs the text of the recorded pages (docs/privacy.md).

Curates each day of every recorded page file twice: with the rule of version 1 (identities of the
pages read so far: includes.users, mention entities, errors[] value and resource_id) and with the
current one (the whole day learned first, plus every @handle in any text and the names and ids in
errors[] details), and prints how many more words the current rule removes, and which.

    python benchmarks/hidden_users.py [FIXTURES_DIR]
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from unittest import mock

from flixluigi.curation import curator
from flixluigi.curation.pseudonym import Pseudonymizer

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "x_api_v2"
KEY = Pseudonymizer(b"benchmark-key-0123456789abcdef012345")


def days(path: Path) -> Iterator[tuple[date, list[dict]]]:
    pages = [json.loads(line) for line in path.read_text().splitlines()]
    for day in sorted({t["created_at"][:10] for p in pages for t in p.get("data", ())}):
        yield date.fromisoformat(day), [q for q in ({**p, "data": [t for t in p.get("data", ()) if t["created_at"][:10] == day]}
                                                    for p in pages) if q["data"]]


def texts(day: date, pages: list[dict], current: bool) -> dict[str, str]:
    """Post id -> curated text, by the current rule or by version 1's sources (a stream, never learned)."""
    made = curator.Curator(day, KEY, datetime(2026, 1, 1, tzinfo=UTC))
    if current:
        batches = list(made.batches(pages))
    else:
        with mock.patch.object(curator, "handles_in", lambda values: []), \
                mock.patch.object(curator, "error_identities", lambda details: ([], [])):
            batches = list(made.batches(io.BytesIO(b"".join(json.dumps(p).encode() + b"\n" for p in pages))))
    return {tid: text for b in batches for tid, text in zip(b.column("tweet_id").to_pylist(), b.column("text").to_pylist(),
                                                             strict=True)}


def main(folder: Path) -> None:
    posts = words = 0
    removed: list[tuple[str, str]] = []
    for path in sorted(folder.glob("*.jsonl")):
        if path.name == "counts.jsonl":
            continue
        for day, pages in days(path):
            before, after = texts(day, pages, False), texts(day, pages, True)
            posts += len(before)
            for tid, old in before.items():
                words += len(old.split())
                removed += [(a, b) for a, b in zip(old.split(), after[tid].split(), strict=True) if a != b]
    print(f"{posts} posts, {words} words of text: the current rule removes {len(removed)} more words than version 1")
    for old, new in removed:
        print(f"  {old!r} -> {new!r}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else FIXTURES)
