"""The privacy half of the quality gate: what is about to be written, checked for every raw id
and username of the day in every form the rule knows (docs/privacy.md, 'The gate')."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from flixluigi.curation.pseudonym import PSEUDONYM_RE
from flixluigi.curation.schema import PSEUDONYM_COLUMNS, TWEET_ID_COLUMNS
from flixluigi.errors import QualityError

if TYPE_CHECKING:
    from flixluigi.curation.curator import CurateStats


def _not_pseudonyms(values: pa.Array) -> int | None:
    """Index of the first value that is not a pseudonym (nulls are absent values, not violations)."""
    bad = pc.invert(pc.fill_null(pc.match_substring_regex(values, PSEUDONYM_RE.pattern), True))
    return pc.index(bad, True).as_py() if pc.any(bad).as_py() else None


def _first_known(values: pa.Array, known: dict[str, bool]) -> int | None:
    """Index of the first value that is a key of `known`; each distinct value looked up once."""
    distinct = values.unique()
    hits = [value for value in distinct.to_pylist() if value in known]
    if not hits:
        return None
    return pc.index(pc.is_in(values, value_set=pa.array(hits, values.type)), True).as_py()


def _row_of(column: pa.Array, index: int) -> int:
    """The row of a value, or of a list item."""
    return pc.list_parent_indices(column)[index].as_py() if pa.types.is_list(column.type) else index


def _remedy(name: str) -> str:
    drop = {"text": "; to publish the day meanwhile, set [sharing] text = drop",
            "author_location": "; to publish the day meanwhile, set [sharing] author_location = drop"}
    return ("this is a gap in flixluigi's privacy rule, not in the raw data, so re-fetching cannot help: "
            "report it (docs/privacy.md, 'When the gate refuses a day')" + drop.get(name, ""))


def check_batch(batch: pa.RecordBatch, stats: CurateStats) -> None:
    """The privacy half of the quality gate, on what is about to be written: every string and list
    column, checked for every raw id and username of the day so far in every form the rule knows.
    After the scrubbing only a gap in the rule can fail it, so the message names the row, not a re-fetch."""
    known, first_row = stats.identities, stats.rows - batch.num_rows
    pseudonymised = PSEUDONYM_COLUMNS + (TWEET_ID_COLUMNS if stats.sharing.tweet_ids == "pseudonymise" else ())
    matcher = stats.matcher
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        values = column.flatten() if pa.types.is_list(column.type) else column
        if not pa.types.is_string(values.type):
            continue
        where = f"column {name}, row {{}} of the day"
        if name in pseudonymised:
            bad = _not_pseudonyms(values)
            if bad is not None:
                raise QualityError(f"privacy gate: {where.format(first_row + _row_of(column, bad))} holds a value that is "
                                   "not a pseudonym; this is a bug in flixluigi's pseudonymisation: refusing to publish")
        elif name in TWEET_ID_COLUMNS:
            clash = _first_known(values, known.ids)
            if clash is not None:
                raise QualityError(f"privacy gate: {where.format(first_row + _row_of(column, clash))} holds a tweet id "
                                   "equal to a raw user id of the day; set [sharing] tweet_ids = pseudonymise")
        elif not matcher.proven(values):
            leak = matcher.first_leak(values)
            if leak is not None:
                index, form = leak
                raise QualityError(f"privacy gate: {where.format(first_row + _row_of(column, index))} still holds "
                                   f"{form} after scrubbing; {_remedy(name)}")
