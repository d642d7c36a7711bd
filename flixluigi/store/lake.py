"""The curated layer: one Delta Lake table partitioned by `date`, written and read with `deltalake`.

Publishing a day is one commit that replaces its partition (`mode="overwrite"` with a predicate
on the day), so readers see the old day or the new one, never a mix. Commits are put-if-absent
writes of `_delta_log/<version>.json` (`conditional_put = etag` on MinIO and SeaweedFS; AWS S3
has it natively): a concurrent writer loses with `CommitConflict`, never corrupts the log. Unsafe
rename is never used. Every row carries its day's `build_id`; column statistics are kept for
`date`, `build_id` and `created_at` only, so which build every day holds is one read of the
table state (add actions with their statistics), and no content reaches `_delta_log`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import date

import pyarrow as pa
import pyarrow.dataset as ds

# deltalake's allocator (jemalloc) keeps the pages a write freed for 10 s before giving them back,
# so a large day's peak held pages the writer no longer used. After 1 s: a 1,000,000-post day
# peaks ~10 MB lower (298/304 -> 291/291 MB, first commit/replacement) at no CPU cost measured;
# 200 ms saved ~15 MB but cost Reprocess 10% of its CPU, 0 ~30 MB for 10% (benchmarks/memory.py,
# reprocess.py). Read once, when deltalake is first loaded in the process; a value set by the user wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:1000,muzzy_decay_ms:0")

from deltalake import CommitProperties, DeltaTable, PostCommitHookProperties, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from flixluigi import config
from flixluigi.errors import CommitConflict, StorageError
from flixluigi.store import s3
from flixluigi.store.state import DAY_KEY

STATS_COLUMNS = "date,build_id,created_at"
# Every commit opens the table: the latest checkpoint (C, every live file's add action: 130 KB at
# 1,000 days, ~130 B a day) plus the JSON entries since (j, 1.2 KB each); every k-th commit writes
# a checkpoint. Per commit that is C + j(k-1)/2 read and j + C/k written, least at k = sqrt(2C/j):
# 25 at 3,000 days, 33 at 5,000 (measured with deltalake 1.6.6, benchmarks/checkpoint.py). At 30
# instead of 10 a 3,000-day backfill writes ~20 MB of checkpoints instead of ~58 MB, and a commit
# reads ~8 more small entries (fetched concurrently) beside the checkpoint, which it reads anyway.
CHECKPOINT_INTERVAL = 30
LOG_RETENTION_DAYS = 30  # Delta's default: `history` of a month, even when vacuum keeps fewer versions
log = logging.getLogger("luigi-interface")
# The Rust writer keeps a file's bytes and its open row group in memory until they are full: its
# defaults (1M-row row groups, ~100 MB files) held most of a large day at once. Smaller ones bound
# a day's write (benchmarks/memory.py, a 1,000,000-post day: 752 MB peak with them; 314 MB with
# 8 MB files; 294 MB with 4 MB files, two dozen of them). Row groups below 16k rows saved nothing
# more. zstd like the raw objects.
ROW_GROUP_ROWS = 16_384
TARGET_FILE_BYTES = 4 << 20
WRITER = WriterProperties(max_row_group_size=ROW_GROUP_ROWS, compression="ZSTD")


def table_configuration() -> dict[str, str]:
    """The table's properties, set at creation and by a commit on a table that has others."""
    return {
        # Statistics hold no content: no text, location, id prefix or pseudonym in the log.
        "delta.dataSkippingStatsColumns": STATS_COLUMNS,
        "delta.checkpointInterval": str(CHECKPOINT_INTERVAL),
        # History, restore and time travel read the log: it keeps at least the versions vacuum keeps,
        # and never less than Delta's default month.
        "delta.logRetentionDuration": f"interval {max(config.storage().keep_versions_days, LOG_RETENTION_DAYS)} days",
    }


def storage_options() -> dict[str, str]:
    """delta-rs's object-store options from `[s3]`, `[storage]` and the AWS_* variables
    (delta-rs does not read ~/.aws)."""
    section = s3.s3_options()
    endpoint = section.get("endpoint_url", "")
    options = {"AWS_REGION": section.get("region_name", "us-east-1")}
    if endpoint:
        options["AWS_ENDPOINT_URL"] = endpoint
        options["AWS_ALLOW_HTTP"] = "true" if endpoint.startswith("http://") else "false"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        if os.environ.get(name):
            options[name] = os.environ[name]
    conditional = config.storage().conditional_put
    if conditional:
        options["conditional_put"] = conditional
    return options


class CuratedTable:
    """The curated Delta table at `uri`."""

    def __init__(self, uri: str, options: dict[str, str]):
        self.uri, self.options = uri, options

    @classmethod
    def from_config(cls) -> CuratedTable:
        cfg = config.storage()
        return cls(f"s3://{cfg.bucket}/{cfg.curated_prefix.strip('/')}", storage_options())

    def fail(self, exc: Exception) -> StorageError:
        """A deltalake failure in one line: a lost commit is a conflict (transient), the rest is
        classified as any S3 failure is."""
        if isinstance(exc, CommitFailedError):
            return CommitConflict(f"another writer committed to {self.uri} first ({' '.join(str(exc).split())[:120]}); retrying")
        return s3.explain(exc, self.uri.removeprefix("s3://").split("/")[0], self.options.get("AWS_ENDPOINT_URL", "AWS S3"),
                          subject=f"the curated table {self.uri}")

    def open(self, version: int | None = None) -> DeltaTable | None:
        """The table at a version (default: latest), or None before its first commit."""
        try:
            return DeltaTable(self.uri, version=version, storage_options=self.options)
        except TableNotFoundError:
            return None
        except (DeltaError, OSError) as exc:
            raise self.fail(exc) from None

    def day_builds(self, table: DeltaTable | None = None) -> dict[date, set[str]]:
        """Day -> the build ids its files hold, from one read of the table state."""
        table = table if table is not None else self.open()
        if table is None:
            return {}
        try:
            actions = pa.table(table.get_add_actions(flatten=True))
        except (DeltaError, OSError) as exc:
            raise self.fail(exc) from None
        builds: dict[date, set[str]] = {}
        if not actions.num_rows:
            return builds
        columns = actions.select(["partition.date", "min.build_id", "max.build_id"]).to_pylist()
        for row in columns:
            builds.setdefault(_as_date(row["partition.date"]), set()).update({row["min.build_id"], row["max.build_id"]})
        return builds

    def write_day(self, day: date, schema: pa.Schema, batches: Iterable[pa.RecordBatch], metadata: dict[str, str]) -> int:
        """Replace the day's partition with `batches` in one commit; returns the new version.

        An exception raised while the batches are produced (the quality gate) aborts the write
        before anything is committed and is re-raised as it was.
        """
        failure: list[BaseException] = []

        def guarded() -> Iterator[pa.RecordBatch]:
            try:
                yield from batches
            except BaseException as exc:
                failure.append(exc)
                raise

        existing = self._existing()
        commit = CommitProperties(custom_metadata={DAY_KEY: day.isoformat(), **metadata},
                                  max_commit_retries=None if existing is not None else 0)
        # The first writer creates the table with its day, as version 0, or fails: with mode "error"
        # delta-rs refuses a table that appeared since `_existing` looked, and with no commit retries
        # it never lands beside another first writer's day. Refused, it raises CommitConflict, and the
        # caller re-reads the table it now finds and writes the day into it as a predicate overwrite.
        try:
            write_deltalake(
                existing if existing is not None else self.uri,
                pa.RecordBatchReader.from_batches(schema, guarded()),
                partition_by=["date"], target_file_size=TARGET_FILE_BYTES, writer_properties=WRITER,
                commit_properties=commit, post_commithook_properties=PostCommitHookProperties(create_checkpoint=True),
                **({"mode": "overwrite", "predicate": f"date = '{day.isoformat()}'", "schema_mode": "merge"}
                   if existing is not None else
                   {"mode": "error", "storage_options": self.options, "configuration": table_configuration()}),
            )
        except (DeltaError, OSError, pa.ArrowException) as exc:
            if failure:
                raise failure[0] from None
            if existing is None and "already exists" in str(exc):
                raise CommitConflict(f"another writer created {self.uri} first; retrying") from None
            raise self.fail(exc) from None
        if failure:
            raise failure[0]
        # The handle is at its own commit's version, even when another writer committed in between.
        return existing.version() if existing is not None else 0

    def _existing(self) -> DeltaTable | None:
        """The latest table (None before its first commit), given the properties `table_configuration`
        names now, by a commit of its own, if it has others (a table made by an earlier release)."""
        table = self.open()
        if table is None:
            return None
        current = table.metadata().configuration
        changed = {name: value for name, value in table_configuration().items() if current.get(name) != value}
        if changed:
            try:
                table.alter.set_table_properties(changed, raise_if_not_exists=False)
            except (DeltaError, OSError) as exc:
                raise self.fail(exc) from None
            log.info("%s: table properties set by version %d: %s", self.uri, table.version(), changed)
        return table

    def day_rows(self, day: date, version: int | None = None, columns: list[str] | None = None) -> pa.Table:
        """The day's rows at a version (default: latest)."""
        table = self.open(version)
        if table is None:
            return pa.table({})
        try:
            return table.to_pyarrow_dataset().to_table(columns=columns, filter=ds.field("date") == pa.scalar(day, pa.date32()))
        except (DeltaError, OSError, pa.ArrowException) as exc:
            raise self.fail(exc) from None

    def read(self, start: date, end: date, columns: list[str] | None = None) -> pa.Table:
        """Rows of the days from start to end inclusive, at the latest version."""
        table = self.open()
        if table is None:
            return pa.table({})
        try:
            return table.to_pyarrow_dataset().to_table(columns=columns, filter=_between(start, end))
        except (DeltaError, OSError, pa.ArrowException) as exc:
            raise self.fail(exc) from None

    def day_files(self, table: DeltaTable | None, start: date, end: date) -> dict[date, list[ds.Fragment]]:
        """The data files of the days from start to end inclusive, by day, from the handle's state:
        a day's rows are then read from its own files, each file once, not from a scan of the table."""
        if table is None:
            return {}
        files: dict[date, list[ds.Fragment]] = {}
        try:
            for fragment in table.to_pyarrow_dataset().get_fragments(filter=_between(start, end)):
                files.setdefault(_as_date(ds.get_partition_keys(fragment.partition_expression)["date"]), []).append(fragment)
        except (DeltaError, OSError, pa.ArrowException) as exc:
            raise self.fail(exc) from None
        return files

    def rows_of(self, files: list[ds.Fragment], columns: list[str]) -> pa.Table:
        """The rows of a day's files (from `day_files`)."""
        try:
            return pa.concat_tables([fragment.to_table(columns=columns) for fragment in files])
        except (OSError, pa.ArrowException) as exc:
            raise self.fail(exc) from None

    def vacuum(self, retention_hours: int, dry_run: bool, full: bool = False, table: DeltaTable | None = None) -> list[str]:
        """Files superseded more than `retention_hours` ago (with `full`, also files no version ever
        referenced: a failed write's leftovers); deleted unless `dry_run`. On `table`, if given, else the latest."""
        table = table if table is not None else self.open()
        if table is None:
            return []
        try:
            return table.vacuum(retention_hours=retention_hours, dry_run=dry_run, enforce_retention_duration=False, full=full)
        except (DeltaError, OSError) as exc:
            raise self.fail(exc) from None

    def orphans(self, grace_hours: int, table: DeltaTable | None = None) -> list[str]:
        """Files in the table's folder that no version references, older than the grace period."""
        table = table if table is not None else self.open()
        return sorted(set(self.vacuum(grace_hours, dry_run=True, full=True, table=table)) -
                      set(self.vacuum(grace_hours, dry_run=True, table=table)))


def _between(start: date, end: date) -> ds.Expression:
    return (ds.field("date") >= pa.scalar(start, pa.date32())) & (ds.field("date") <= pa.scalar(end, pa.date32()))


def _as_date(value: object) -> date:
    """A partition value as deltalake gives it (a date, or its text)."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def retrying_conflicts(action: Callable[[], int], done: Callable[[], bool], tries: int = 5) -> int | None:
    """Run a commit; when another writer wins, stop if the day is now done (None), else try again."""
    for attempt in range(tries):
        try:
            return action()
        except CommitConflict as exc:
            if done():
                return None
            if attempt == tries - 1:
                raise
            log.warning("%s (try %d of %d)", exc, attempt + 2, tries)
    return None
