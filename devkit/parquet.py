"""A curated day into one Parquet file: the sink of the curation benchmark (CuratedTweets writes
the same batches into the Delta table instead). Not shipped with the package."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

from flixluigi.curation.curator import CurateStats, Curator
from flixluigi.curation.gate import check_batch
from flixluigi.curation.schema import SCHEMA

ROW_GROUP_ROWS = 50_000


def write_parquet(source: IO[bytes] | Iterable[bytes | dict], sink: IO[bytes] | str, curator: Curator,
                  on_batch: Callable[[CurateStats], None] = lambda stats: None) -> CurateStats:
    """Stream a raw day into Parquet row groups, gating each batch; raises QualityError on any violation."""
    with pq.ParquetWriter(sink, SCHEMA, compression="zstd") as writer:
        pending: list[pa.RecordBatch] = []
        for batch in curator.batches(source):
            check_batch(batch, curator.stats)
            pending.append(batch)
            on_batch(curator.stats)
            if sum(b.num_rows for b in pending) >= ROW_GROUP_ROWS:
                writer.write_table(pa.Table.from_batches(pending, SCHEMA), row_group_size=ROW_GROUP_ROWS)
                pending = []
        if pending:
            writer.write_table(pa.Table.from_batches(pending, SCHEMA), row_group_size=ROW_GROUP_ROWS)
    return curator.stats
