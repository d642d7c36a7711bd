"""Operator changes to stored days: restore a version, vacuum what is superseded, migrate a 0.1 bucket.

Each is safe while jobs run: restore is an ordinary commit of one day (it loses to a concurrent
writer with a conflict, never overwrites it), and vacuum never deletes files younger than
`[storage] min_file_age_hours`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from flixluigi import config
from flixluigi._version import __version__
from flixluigi.compliance.apply import load_state, purge, refuse_restore_before_compliance
from flixluigi.errors import StorageError
from flixluigi.store import rejected
from flixluigi.store.lake import CuratedTable
from flixluigi.store.layout import LEGACY_FETCH_SUFFIX, LEGACY_RAW_RE, Layout, RawDay, new_fetch_id, parse_stamp
from flixluigi.store.s3 import Storage
from flixluigi.store.state import REASON_KEY, curated_record, day_versions, layout, point, raw_day
from flixluigi.work import Reporter, curate_day, pseudonymizer


def restore(day: date, version: int) -> str:
    """Make a version of one day current again as a new commit, and point the raw day back at the
    fetch it was built from, so the next run does not rebuild over it."""
    store, where, table = Storage.from_config(), layout(), CuratedTable.from_config()
    newest, *_ = listed = day_versions(store, where, day) or [None]
    versions = {v.version: v for v in listed if v}
    if version not in versions:
        raise ValueError(f"version {version} did not write {day}; `flixluigi history --date {day}` lists the versions")
    meta = versions[version].metadata
    stored = raw_day(store, where, day)
    if meta.get("flixluigi.build_id") == newest.metadata.get("flixluigi.build_id") and \
            meta.get("flixluigi.raw_fetch") == stored.current:
        return f"{day}: version {version} is what the day holds now (version {newest.version}); nothing to restore, no commit made"
    if versions[version].timestamp:
        refuse_restore_before_compliance(store, where, day, datetime.fromtimestamp(versions[version].timestamp / 1000, UTC))
    fetch_id = meta.get("flixluigi.raw_fetch", "")
    if fetch_id not in stored.fetches:
        raise StorageError(f"raw fetch {fetch_id} of version {version} was vacuumed; {day} cannot be restored to it")
    try:
        rows = table.day_rows(day, version)
    except StorageError as exc:
        raise StorageError(f"the files of version {version} of {day} were vacuumed ({exc}); it cannot be restored") from None
    new_version = table.write_day(day, rows.schema, rows.to_batches(), {**meta, "flixluigi.restored_from": str(version),
                                                                        "flixluigi.client_version": __version__,
                                                                        REASON_KEY: "restore"})
    pointer = {**store.get_json(max(stored.pointers)[2]), "fetch": fetch_id, "object": stored.fetches[fetch_id]["Key"],
               "restored_at": datetime.now(UTC).isoformat()}
    point(store, day, fetch_id, pointer)
    record = curated_record(day, meta, new_version, rows.num_rows, 0, restored_from=version, reason="restore")
    store.put_json(where.record_key(day, record["build_id"]), record)
    return f"{day}: version {version} restored as version {new_version} ({rows.num_rows} rows, raw fetch {fetch_id})"


def vacuum(apply: bool) -> list[str]:
    """Table files, raw fetches superseded and rejected fetches made more than [storage]
    keep_versions_days ago, never files younger than [storage] min_file_age_hours; and multipart
    uploads begun before that grace and never completed (a killed writer's), which readers never see
    but S3 stores and bills. A dry run unless `apply`."""
    cfg = config.storage()
    hours = max(cfg.keep_versions_days * 24, cfg.min_file_age_hours)
    store, where, table = Storage.from_config(), layout(), CuratedTable.from_config()
    grace = datetime.now(UTC) - timedelta(hours=cfg.min_file_age_hours)
    uploads = [upload for prefix in (where.raw + "/", where.curated + "/") for upload in store.unfinished_uploads(prefix, grace)]
    if apply:
        for key, upload_id in uploads:
            store.abort_upload(key, upload_id)
    files = table.vacuum(hours, dry_run=not apply, full=True)
    cutoff = datetime.now(UTC) - timedelta(hours=hours)
    doomed: list[str] = []
    for stored in Layout.raw_days(list(store.list(where.raw + "/"))).values():
        for fetch_id, item in stored.fetches.items():
            if fetch_id != stored.current and item["LastModified"] < cutoff and _superseded_at(stored, fetch_id) < cutoff:
                doomed.append(item["Key"])
    doomed += [key for _day, made, key in rejected.stored(store, where) if made < cutoff]  # refused fetches: personal data
    if apply and doomed:
        store.delete_many(doomed)
    if apply:  # compliance purges due now win over the retention of versions
        doomed += purge(store, where, table, load_state(store, where), config.compliance().purge_after_hours)
    verb = "deleted" if apply else "would delete"
    aborted = [f"{'aborted' if apply else 'would abort'} the unfinished upload of {store.url(key)}" for key, _ in uploads]
    lines = aborted + [f"{verb} {store.url(key)}" for key in doomed] + [f"{verb} {name}" for name in files]
    return lines or [f"nothing to delete: no superseded file older than {hours}h ([storage] keep_versions_days, "
                     "min_file_age_hours) and no upload left unfinished"]


def _superseded_at(stored: RawDay, fetch_id: str) -> datetime:
    """When another fetch first became current after this one (a fetch never pointed at, left by a
    crash, counts as superseded when it was written)."""
    own = [stamp for stamp, pointed, _key in stored.pointers if pointed == fetch_id]
    since = min(own) if own else fetch_id.split("-")[0]
    later = [stamp for stamp, pointed, _key in stored.pointers if pointed != fetch_id and stamp > since]
    return parse_stamp(min(later) if later else since)


def migrate(apply: bool) -> list[str]:
    """Convert a bucket written by flixluigi 0.1 (one raw object and manifest per day, curated
    Parquet files): each raw day becomes a fetch with its pointer, each curated day is rebuilt
    into the table from it, and the old curated files and manifests are removed. Idempotent."""
    store, where, table = Storage.from_config(), layout(), CuratedTable.from_config()
    key = pseudonymizer()
    lines = []
    legacy = [item for item in store.list(where.raw + "/") if LEGACY_RAW_RE.search(item["Key"])]
    for item in legacy:
        day = date.fromisoformat(LEGACY_RAW_RE.search(item["Key"]).group(1))
        manifest_key = where.legacy_manifest_key(day)
        manifest = store.get_json(manifest_key) if store.exists(manifest_key) else {}
        fetch_id = new_fetch_id(item["LastModified"], LEGACY_FETCH_SUFFIX)
        lines.append(f"{day}: raw {item['Key']} -> fetch {fetch_id}, curated day rebuilt")
        if not apply:
            continue
        target = where.fetch_key(day, fetch_id, "gz")
        store.copy(item["Key"], target)
        point(store, day, fetch_id, {**manifest, "date": day.isoformat(), "fetch": fetch_id, "object": target,
                                     "migrated_from": item["Key"], "produced_at": item["LastModified"].isoformat()})
        curate_day(store, table, day, key, Reporter())
        store.delete_many([item["Key"], manifest_key])
    old_curated = [k for k in store.list_keys(where.curated + "/") if k.endswith("/tweets.parquet") or "/_manifests/" in k]
    old_curated += [k for k in store.list_keys(where.raw + "/_manifests/")]
    if old_curated:
        lines.append(f"remove {len(old_curated)} objects of the old layout (curated Parquet files and manifests)")
        if apply:
            store.delete_many(old_curated)
    return lines or ["nothing to migrate: no object of the old layout"]
