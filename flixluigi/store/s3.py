"""S3 objects of the pipeline: one boto3 client, errors in one line, listings, streaming uploads.

The client is built from Luigi's `[s3]` section (endpoint, region; credentials from boto3's
usual chain) with botocore's standard retry mode, so a 503, `SlowDown` or the `InternalError`
that SeaweedFS answers while its volumes register is retried before it becomes an error.
Objects are uploaded by multipart from memory (`upload`): nothing is written to local disk,
and an upload that fails or is killed leaves no object at its key. Every failure of S3, through
boto3 here or through deltalake in `store.lake`, becomes a `StorageError` (`explain`) whose
message names the problem and the fix and whose `transient` flag says whether a later try can
succeed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import IO

import botocore.config
import botocore.exceptions
import luigi.configuration
import orjson

from flixluigi import config
from flixluigi.errors import MAX_LINE, StorageError, TransientStorageError

PART_BYTES = 8 << 20  # multipart part size: S3's minimum is 5 MiB
TRANSIENT_CODES = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "503", "500", "502", "504"}
CREDENTIAL_CODES = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "403")


# Words of an error's text (deltalake's object store has no codes) that mean S3 did not answer or
# answered that it is busy: a later try can mend them.
UNREACHABLE_WORDS = ("connection refused", "error sending request", "timed out", "connect error", "internalerror",
                     "service unavailable", "slowdown", "503")
# object_store colours its error chains ("Generic S3 error \x1b[31m↳\x1b[0m ..."); messages go to
# Slack, webhooks and `flixluigi status`, where the escapes are noise.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def explain(exc: Exception, bucket: str, endpoint: str, subject: str = "") -> StorageError:
    """A boto3 or deltalake failure as one line that names the problem and the fix, transient where
    a later try can mend it. `subject` names what failed (default: the S3 endpoint)."""
    if isinstance(exc, StorageError):
        return exc
    unreachable = f"{subject or f'S3 endpoint {endpoint}'} is unreachable{{}}; start it (scripts/seaweedfs.sh start) " \
                  "or fix [s3] endpoint_url"
    subject = subject or f"S3 at {endpoint}"
    no_bucket = StorageError(f"S3 bucket {bucket!r} does not exist at {endpoint}; create it or fix [storage] bucket")
    refused = f"S3 at {endpoint} refused the credentials ({{}}); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    if isinstance(exc, (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError,
                        botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectionClosedError)):
        return TransientStorageError(unreachable.format(""))
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return StorageError("no S3 credentials; export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in ("NoSuchBucket", "404"):
            return no_bucket
        if code in CREDENTIAL_CODES:
            return StorageError(refused.format(code))
        kind = TransientStorageError if code in TRANSIENT_CODES else StorageError
        return kind(f"S3 error {code} at {endpoint}: {' '.join(str(error.get('Message', '')).split())}")
    text = " ".join(ANSI_ESCAPE.sub("", str(exc)).split())
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return TransientStorageError(f"{subject} failed: {type(exc).__name__}: {text}"[:MAX_LINE])
    lowered = text.lower()
    if any(word in lowered for word in UNREACHABLE_WORDS):
        return TransientStorageError(unreachable.format(f" ({text[:160]})"))
    if "nosuchbucket" in lowered or ("bucket" in lowered and "not" in lowered and "exist" in lowered):
        return no_bucket
    if code := next((c for c in CREDENTIAL_CODES if c.lower() in lowered), None):
        return StorageError(refused.format(code))
    return StorageError(f"{subject} failed: {type(exc).__name__}: {text[:200]}")


def s3_options() -> dict:
    """Luigi's `[s3]` section as boto3 client arguments (endpoint_url, region_name, ...), read as
    luigi.contrib.s3 reads it ([DEFAULT] values left out, numbers as numbers) without importing it."""
    cfg = luigi.configuration.get_config()
    if not cfg.has_section("s3"):
        return {}
    defaults = cfg.defaults()
    return {key: int(value) if value.isdigit() else value for key, value in cfg.items("s3") if defaults.get(key) != value}


@lru_cache(maxsize=1)
def _session():
    """boto3's session: the S3 service model it loaded crosses a fork (no connection does), so a
    worker's fork builds its client in 13 ms of CPU instead of 76 (a day's task is a fork)."""
    import boto3  # 0.1 s: only where S3 is used

    return boto3.session.Session()


@lru_cache(maxsize=8)
def _shared_client(options: tuple, credentials: tuple[str, str], max_attempts: int, pid: int):
    """One boto3 client per configuration and process (building one costs ~100 ms, and a range of
    1,000 days instantiates thousands of tasks). `credentials` and `pid` are only part of the cache
    key: a client must not cross a fork (`--workers N`), its pooled connections would be shared.
    Keys from the environment are passed as they are now (the session would keep the first it saw)."""
    return new_client(dict(options), max_attempts)


def new_client(options: dict, max_attempts: int):
    """A boto3 S3 client with its own connection pool: `[s3]` options, keys from the environment."""
    retries = botocore.config.Config(retries={"mode": "standard", "max_attempts": max_attempts},
                                     connect_timeout=5, read_timeout=60)
    keys = {}
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        keys = {"aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
                "aws_secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY"),
                "aws_session_token": os.environ.get("AWS_SESSION_TOKEN") or None}
    return _session().client("s3", config=retries, **keys, **options)


def _credentials_key() -> tuple[str, str]:
    return (os.environ.get("AWS_ACCESS_KEY_ID", ""),
            hashlib.sha256(os.environ.get("AWS_SECRET_ACCESS_KEY", "").encode()).hexdigest())


@dataclass
class Storage:
    """The bucket and the few operations the pipeline needs, each failing with one line."""

    bucket: str
    s3: object  # boto3's low-level S3 client

    @classmethod
    def from_config(cls, own_connections: bool = False, max_attempts: int | None = None) -> Storage:
        """The configured bucket through this process's shared client, or one of its own (`own_connections`);
        `max_attempts` overrides [storage] s3_max_attempts (botocore's retries)."""
        config.require_settings()  # before the process's first request: no settings must not mean AWS S3
        cfg = config.storage()
        attempts = max_attempts or cfg.s3_max_attempts
        if own_connections:
            return cls(cfg.bucket, new_client(s3_options(), attempts))
        client = _shared_client(tuple(sorted(s3_options().items())), _credentials_key(), attempts, os.getpid())
        return cls(cfg.bucket, client)

    @property
    def endpoint(self) -> str:
        return self.s3.meta.endpoint_url

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def fail(self, exc: Exception) -> StorageError:
        return explain(exc, self.bucket, self.endpoint)

    @contextmanager
    def errors_explained(self) -> Iterator[None]:
        try:
            yield
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self.fail(exc) from None

    def check(self) -> None:
        """Fail before any work if S3 is unreachable, the bucket is missing or credentials are wrong."""
        with self.errors_explained():
            self.s3.head_bucket(Bucket=self.bucket)

    def check_at_start(self) -> None:
        """`check` for a run's start: a refused connection on the first try fails at once, as permanent
        (nothing listens there: a service to start or a setting to fix), instead of after every retry
        of every try (72 s); any other fault (SeaweedFS's InternalError while its volumes register)
        gets `check`'s retries. A refused connection in the middle of a day stays transient."""
        once = Storage.from_config(max_attempts=1)
        try:
            once.s3.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.EndpointConnectionError as exc:
            if "refused" in str(exc.kwargs.get("error", "")).lower():
                raise StorageError(f"S3 endpoint {self.endpoint} refuses connections; start it (scripts/seaweedfs.sh start) "
                                   "or fix [s3] endpoint_url") from None
            self.check()
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            self.check()

    def list(self, prefix: str, start_after: str = "", until: str = "") -> Iterator[dict]:
        """Every object under the prefix (key, size, ETag, LastModified), 1,000 a request; with
        `start_after` and `until`, only keys after the one and up to the other, and no page beyond."""
        with self.errors_explained():
            pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, StartAfter=start_after)
            for page in pages:
                for item in page.get("Contents", ()):
                    if until and item["Key"] > until:
                        return
                    yield item

    def list_keys(self, prefix: str) -> Iterator[str]:
        for item in self.list(prefix):
            yield item["Key"]

    def exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self.fail(exc) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self.fail(exc) from None
        return True

    def put_bytes(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> str:
        """A whole object in one request; returns its ETag."""
        with self.errors_explained():
            return self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)["ETag"]

    def put_json(self, key: str, value: dict) -> str:
        return self.put_bytes(key, orjson.dumps(value, option=orjson.OPT_INDENT_2), "application/json")

    def get_bytes(self, key: str) -> bytes:
        data = self.get_bytes_if_exists(key)
        if data is None:
            raise StorageError(f"{self.url(key)} does not exist; run the day first")
        return data

    def get_bytes_if_exists(self, key: str) -> bytes | None:
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchKey":
                return None
            raise self.fail(exc) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self.fail(exc) from None

    def get_json(self, key: str) -> dict:
        return orjson.loads(self.get_bytes(key))

    def open(self, key: str) -> IO[bytes]:
        """A streaming reader of an object: bytes arrive as the body downloads."""
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchKey":
                raise StorageError(f"{self.url(key)} does not exist; the stored raw day is gone: refetch it "
                                   "(luigi --module flixluigi Reprocess --start DAY --refetch --local-scheduler)") from None
            raise self.fail(exc) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self.fail(exc) from None

    def copy(self, source: str, destination: str) -> None:
        with self.errors_explained():
            self.s3.copy_object(Bucket=self.bucket, Key=destination, CopySource={"Bucket": self.bucket, "Key": source})

    def delete(self, key: str) -> None:
        with self.errors_explained():
            self.s3.delete_object(Bucket=self.bucket, Key=key)

    def delete_many(self, keys: list[str]) -> None:
        with self.errors_explained():
            for start in range(0, len(keys), 1000):
                chunk = [{"Key": key} for key in keys[start:start + 1000]]
                self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True})

    def unfinished_uploads(self, prefix: str, started_before: datetime) -> list[tuple[str, str]]:
        """Multipart uploads under the prefix begun before a time and never completed (a killed
        writer's): invisible to readers, but stored and billed. (key, upload id) each."""
        with self.errors_explained():
            pages = self.s3.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix)
            return [(item["Key"], item["UploadId"]) for page in pages for item in page.get("Uploads", ())
                    if item["Initiated"] < started_before]

    def abort_upload(self, key: str, upload_id: str) -> None:
        with self.errors_explained():
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    @contextmanager
    def upload(self, key: str) -> Iterator[Upload]:
        """A writable object: parts go up as they fill, the object appears only when the block ends
        without an exception; otherwise the multipart upload is aborted and nothing is published."""
        with self.errors_explained():
            upload_id = self.s3.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        sink = Upload(self, key, upload_id)
        try:
            yield sink
            sink.complete()
        except BaseException:
            sink.abort()
            raise


class Upload:
    """File-like sink of a multipart upload, fed by gzip or any writer; holds one part in memory."""

    def __init__(self, store: Storage, key: str, upload_id: str):
        self.store, self.key, self.upload_id = store, key, upload_id
        self.parts: list[dict] = []
        self.buffer = bytearray()
        self.size = 0
        self.etag = ""

    def write(self, data: bytes) -> int:
        self.buffer += data
        self.size += len(data)
        if len(self.buffer) >= PART_BYTES:
            self._send()
        return len(data)

    closed = False  # for pyarrow's PythonFile, which the zstd writer wraps around this sink

    def flush(self) -> None:
        """Writers call this; parts go up only when full."""

    def close(self) -> None:
        """Closing the compressor closes its sink; the upload itself completes when its block ends."""

    def _send(self) -> None:
        number = len(self.parts) + 1
        with self.store.errors_explained():
            answer = self.store.s3.upload_part(Bucket=self.store.bucket, Key=self.key, UploadId=self.upload_id,
                                               PartNumber=number, Body=bytes(self.buffer))
        self.parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        self.buffer.clear()

    def complete(self) -> None:
        if self.buffer or not self.parts:
            self._send()
        with self.store.errors_explained():
            answer = self.store.s3.complete_multipart_upload(Bucket=self.store.bucket, Key=self.key, UploadId=self.upload_id,
                                                             MultipartUpload={"Parts": self.parts})
        self.etag = answer["ETag"]

    def abort(self) -> None:
        # S3 may be what failed; an unfinished upload never becomes an object anyway.
        with contextlib.suppress(Exception):
            self.store.s3.abort_multipart_upload(Bucket=self.store.bucket, Key=self.key, UploadId=self.upload_id)
