"""What a table's log costs a commit, by checkpoint interval: the numbers behind
`flixluigi.store.lake.CHECKPOINT_INTERVAL`.

N days (default 1,000) of 50 rows each are committed one commit a day, as curation commits them
(predicate overwrite, the project's table properties, statistics of date/build_id/created_at,
flixluigi's commit metadata), to a local table. Printed: the latest checkpoint's size C, the mean
log entry j, the whole log, and per interval k the bytes a commit reads (C + j(k-1)/2) and writes
(j + C/k), beside the optimum k = sqrt(2C/j). Local files: the sizes are what S3 would move.

    python benchmarks/checkpoint.py [--days 1000]
"""

from __future__ import annotations

import argparse
import math
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, PostCommitHookProperties, write_deltalake

from flixluigi.store.lake import STATS_COLUMNS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=1000)
    days = parser.parse_args().days
    with tempfile.TemporaryDirectory() as folder:
        uri, table = str(Path(folder) / "table"), None
        config = {"delta.checkpointInterval": "10", "delta.dataSkippingStatsColumns": STATS_COLUMNS}
        for n in range(days):
            day = date(2013, 1, 1) + timedelta(days=n)
            rows = pa.table({"date": pa.array([day] * 50, pa.date32()), "build_id": ["0123456789abcdef"] * 50,
                             "created_at": pa.array([datetime(2013, 1, 1)] * 50, pa.timestamp("us")), "x": range(50)})
            meta = {"flixluigi.day": str(day), "flixluigi.build_id": "0123456789abcdef", "flixluigi.key_id": "k1234567",
                    "flixluigi.raw_fetch": "20260101T000000000000Z-abcdef01", "flixluigi.schema_version": "3",
                    "flixluigi.sharing": "abc", "flixluigi.client_version": "0.3.0"}
            write_deltalake(table if table is not None else uri, rows, mode="overwrite", predicate=f"date = '{day}'",
                            partition_by=["date"], configuration=None if table is not None else config,
                            commit_properties=CommitProperties(custom_metadata=meta),
                            post_commithook_properties=PostCommitHookProperties(create_checkpoint=True))
            table = table if table is not None else DeltaTable(uri)
        log = Path(uri) / "_delta_log"
        checkpoint = max(log.glob("*.checkpoint.parquet")).stat().st_size
        entries = [p.stat().st_size for p in log.glob("*.json")]
        entry = sum(entries) / len(entries)
        print(f"{days} days: checkpoint C {checkpoint / 1e3:.0f} KB, entry j {entry / 1e3:.2f} KB, "
              f"log {sum(p.stat().st_size for p in log.iterdir()) / 1e6:.1f} MB at interval 10")
        print(f"optimum k = sqrt(2C/j) = {math.sqrt(2 * checkpoint / entry):.0f}")
        for k in (10, 20, 30, 50, 100):
            print(f"k={k:3}: a commit reads {(checkpoint + entry * (k - 1) / 2) / 1e3:6.0f} KB in ~{2 + (k - 1) / 2:.0f} "
                  f"requests, writes {(entry + checkpoint / k) / 1e3:5.1f} KB")


if __name__ == "__main__":
    main()
