"""`flixluigi s3check`: does this S3 server do what the pipeline relies on? Run it before the first run.

Since deltalake dropped its DynamoDB lock, two writers of the curated table stay safe only
because the server refuses a second `If-None-Match: *` PUT of a `_delta_log/<version>.json` key
with 412; S3-compatible servers have had races exactly there (SeaweedFS before seaweedfs#8800).
So N writers, each on its own warmed-up connection, are released together behind a barrier and
PUT one new key with `If-None-Match: *`; exactly one may succeed, in every one of several rounds.
On two cores the requests may still be served one after another, so a pass is evidence, not
proof; a failure is proof. Besides: `[storage] conditional_put` must match what the server does,
and the pipeline's own client (the default CRC checksums of boto3 >= 1.36, which some servers
refuse) must manage a multipart upload, a listing over several pages and deletes. Every key goes
under `_s3check/<run>/` (readers skip `_` folders) and is deleted at the end, pass or fail.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import botocore.exceptions

from flixluigi import config
from flixluigi.errors import S3CheckFailed
from flixluigi.store.s3 import PART_BYTES, Storage

PREFIX = "_s3check"
WRITERS, ROUNDS = 8, 5
LIST_OBJECTS, PAGE_SIZE = 5, 2
FIX_SERVER = "use a server that refuses it with 412 (SeaweedFS 4.48, the version the tests run against)"


def put_if_absent(storage: Storage, key: str, body: bytes) -> int | str:
    """The HTTP status of a PUT with `If-None-Match: *`, or the error code a server answered with."""
    try:
        return storage.s3.put_object(Bucket=storage.bucket, Key=key, Body=body, IfNoneMatch="*")["ResponseMetadata"]["HTTPStatusCode"]
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        return 412 if code == "PreconditionFailed" else str(code or exc.response["ResponseMetadata"]["HTTPStatusCode"])


class Check:
    """One run of the check against the configured bucket; everything it writes goes under `prefix`."""

    def __init__(self, storage: Storage, writers: int, rounds: int):
        self.storage, self.writers, self.rounds = storage, writers, rounds
        self.prefix = f"{PREFIX}/{uuid.uuid4().hex}"
        self.where = f"{storage.endpoint} bucket {storage.bucket!r}"

    def fail(self, problem: str, fix: str) -> S3CheckFailed:
        return S3CheckFailed(f"S3 check failed at {self.where}: {problem}; {fix}")

    def run(self) -> str:
        try:
            self.storage.check()
            self.conditional_setting()
            self.one_winner_each_round()
            self.stale_etag_refused()
            self.multipart()
            self.listing_pages()
        finally:
            self.clean_up()
        setting = config.storage().conditional_put or "(empty: AWS S3)"
        return (f"S3 check passed at {self.where}: in {self.rounds} rounds of {self.writers} concurrent If-None-Match: * PUTs "
                "released together, exactly one won each time (evidence the server refuses concurrent second writers, not "
                f"proof); conditional_put = {setting} matches; multipart upload, paged listing, deletes and boto3's default "
                "CRC checksums work")

    def conditional_setting(self) -> None:
        """The curated table commits with delta-rs's `conditional_put = etag` on anything but AWS S3."""
        setting = config.storage().conditional_put
        on_aws = urlparse(self.storage.endpoint).hostname.endswith("amazonaws.com")
        if setting == "etag" or (not setting and on_aws):
            return
        raise self.fail(f"[storage] conditional_put = {setting!r} does not match this server, which takes If-None-Match: * "
                        "and If-Match PUTs", "set [storage] conditional_put = etag")

    def one_winner_each_round(self) -> None:
        key = f"{self.prefix}/put-if-absent"
        answer = put_if_absent(self.storage, key, b"first")
        if answer != 200:
            raise self.fail(f"a PUT with If-None-Match: * of a new key was refused ({answer})", FIX_SERVER)
        if (answer := put_if_absent(self.storage, key, b"second")) != 412:
            raise self.fail(f"a second PUT with If-None-Match: * of an existing key got {answer}, not 412: "
                            "concurrent Delta commits would overwrite each other", FIX_SERVER)
        clients = [Storage.from_config(own_connections=True) for _ in range(self.writers)]
        for client in clients:  # connections open before the barrier, so the PUTs leave together
            client.check()
        for number in range(1, self.rounds + 1):
            key = f"{self.prefix}/round-{number}"
            start = threading.Barrier(self.writers)

            def write(n: int, key: str = key, start: threading.Barrier = start) -> int | str:
                start.wait(timeout=60)
                return put_if_absent(clients[n], key, f"writer {n}".encode())

            with ThreadPoolExecutor(self.writers) as pool:
                answers = Counter(pool.map(write, range(self.writers)))
            if answers != Counter({200: 1, 412: self.writers - 1}):
                seen = ", ".join(f"{count} x {answer}" for answer, count in sorted(answers.items(), key=str))
                raise self.fail(f"round {number}: {self.writers} concurrent If-None-Match: * PUTs of one new key got {seen}, "
                                "not one 200 and the rest 412: concurrent Delta commits could overwrite each other", FIX_SERVER)

    def stale_etag_refused(self) -> None:
        """`conditional_put = etag` also sends If-Match with the ETag read; a stale one must get 412."""
        key = f"{self.prefix}/if-match"
        s3, bucket = self.storage.s3, self.storage.bucket
        with self.storage.errors_explained():
            s3.put_object(Bucket=bucket, Key=key, Body=b"one")
            s3.put_object(Bucket=bucket, Key=key, Body=b"two")
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=b"three", IfMatch='"00000000000000000000000000000000"')
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "PreconditionFailed":
                return
            raise self.fail(f"a PUT with a stale If-Match got {exc.response.get('Error', {}).get('Code')}, not 412", FIX_SERVER) from None
        raise self.fail("a PUT with a stale If-Match ETag succeeded, not 412", FIX_SERVER)

    def multipart(self) -> None:
        """Raw days go up by multipart from memory, parts of PART_BYTES with boto3's default checksums."""
        key, body = f"{self.prefix}/multipart", uuid.uuid4().bytes * (PART_BYTES // 16 + 1)
        try:
            with self.storage.upload(key) as sink:
                sink.write(body)
            stored = self.storage.get_bytes(key)
        except Exception as exc:
            raise self.fail(f"a multipart upload with boto3's default CRC checksums failed ({exc})",
                            "use a server that takes them, or set AWS_REQUEST_CHECKSUM_CALCULATION=when_required") from None
        if stored != body:
            raise self.fail(f"a multipart upload of {len(body)} bytes read back as {len(stored)} other bytes", FIX_SERVER)

    def listing_pages(self) -> None:
        """Listings go page by page (continuation tokens): every key once, in order, over several pages."""
        prefix, s3 = f"{self.prefix}/listing/", self.storage.s3
        written = [f"{prefix}{n:02d}" for n in range(LIST_OBJECTS)]
        with self.storage.errors_explained():
            for key in written:
                s3.put_object(Bucket=self.storage.bucket, Key=key, Body=b"")
            pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=self.storage.bucket, Prefix=prefix,
                                                                      PaginationConfig={"PageSize": PAGE_SIZE}))
        listed = [item["Key"] for page in pages for item in page.get("Contents", ())]
        if listed != written or len(pages) < LIST_OBJECTS // PAGE_SIZE:
            raise self.fail(f"listing {LIST_OBJECTS} keys {PAGE_SIZE} a page gave {len(listed)} keys in {len(pages)} pages",
                            "use a server whose ListObjectsV2 pages with continuation tokens")

    def clean_up(self) -> None:
        """Deletes every key under this run's prefix (a failed multipart upload aborts itself)."""
        self.storage.delete_many(list(self.storage.list_keys(f"{self.prefix}/")))


def s3check(writers: int = WRITERS, rounds: int = ROUNDS) -> str:
    """The verdict in one line; raises S3CheckFailed (what failed and the fix) otherwise."""
    if writers < 2 or rounds < 1:
        raise ValueError("s3check needs --writers 2 or more and --rounds 1 or more")
    return Check(Storage.from_config(), writers, rounds).run()
