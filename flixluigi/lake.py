"""The curated table as analysts import it (`from flixluigi.lake import CuratedTable, storage_options`),
a stable name for `flixluigi.store.lake`, where it lives since 0.3 (CHANGELOG.md)."""

from flixluigi.store.lake import CuratedTable, storage_options

__all__ = ["CuratedTable", "storage_options"]
