"""Recorded pages in twarc's JSON Lines format, one API response per line."""

from __future__ import annotations

import json
from pathlib import Path


def load_pages(*paths: str | Path) -> list[dict]:
    """Pages of every file in order, without twarc's own `__twarc` bookkeeping key."""
    pages = []
    for path in paths:
        with open(path, encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    page = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{number}: not a JSON page ({exc.msg}); expected twarc JSONL") from None
                page.pop("__twarc", None)
                pages.append(page)
    return pages
