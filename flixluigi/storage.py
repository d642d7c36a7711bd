"""S3 layout of the pipeline: paths, targets, one-listing completeness, archive.

Built on Luigi's own `S3Client`, so endpoint, region and the rest come from `luigi.cfg`'s
`[s3]` section. Every object is written whole or not at all (`S3Target` uploads on close).
A day's manifest is written last and marks the day complete. Manifests live in one flat
folder per prefix, `<prefix>/_manifests/date=YYYY-MM-DD.json`, so which of 1,000 days are
complete is one short listing of one key a day (readers skip `_`-folders).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import IO

import botocore.exceptions
import luigi
import luigi.format
import orjson
import pyarrow as pa
from luigi.contrib.s3 import S3Client, S3Target

from flixluigi import config

MANIFESTS = "_manifests"
RAW_FILE = "pages.jsonl.gz"
CURATED_FILE = "tweets.parquet"
_MANIFEST_KEY = re.compile(r"/date=(\d{4}-\d{2}-\d{2})(\.failed)?\.json$")


class StorageError(Exception):
    """S3 is unreachable, the bucket is missing, or credentials are refused; one line with the fix."""


def explain(exc: Exception, bucket: str, endpoint: str) -> StorageError:
    """Turn a boto3 failure into one line that names the problem and the fix."""
    if isinstance(exc, (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError,
                        botocore.exceptions.ReadTimeoutError)):
        return StorageError(f"S3 endpoint {endpoint} is unreachable; start it (scripts/seaweedfs.sh start) "
                            "or fix [s3] endpoint_url")
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return StorageError("no S3 credentials; export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if isinstance(exc, botocore.exceptions.ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchBucket", "404"):
            return StorageError(f"S3 bucket {bucket!r} does not exist at {endpoint}; create it or fix [storage] bucket")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "InvalidToken"):
            return StorageError(f"S3 at {endpoint} refused the credentials ({code}); check AWS_ACCESS_KEY_ID "
                                "and AWS_SECRET_ACCESS_KEY")
        return StorageError(f"S3 error {code} at {endpoint}: {exc.response.get('Error', {}).get('Message', '')}")
    return StorageError(f"S3 at {endpoint} failed: {type(exc).__name__}: {exc}".splitlines()[0])


@lru_cache(maxsize=8)
def _shared_client(options: tuple, credentials: tuple[str, str]) -> S3Client:
    """One S3 client per configuration and process: making a boto3 client costs ~100 ms, and a
    range of 1,000 days instantiates 2,000 day tasks. `credentials` is only part of the cache key."""
    return S3Client(**dict(options))


@dataclass
class Storage:
    bucket: str
    raw_prefix: str
    curated_prefix: str
    archive_prefix: str
    client: S3Client

    @classmethod
    def from_config(cls) -> Storage:
        cfg = config.storage()
        credentials = (os.environ.get("AWS_ACCESS_KEY_ID", ""), hashlib.sha256(
            os.environ.get("AWS_SECRET_ACCESS_KEY", "").encode()).hexdigest())
        client = _shared_client(tuple(sorted(S3Client._get_s3_config().items())), credentials)
        return cls(cfg.bucket, cfg.raw_prefix.strip("/"), cfg.curated_prefix.strip("/"), cfg.archive_prefix.strip("/"), client)

    @property
    def s3(self):  # boto3's low-level client
        return self.client.s3.meta.client

    @property
    def endpoint(self) -> str:
        return self.s3.meta.endpoint_url

    def fail(self, exc: Exception) -> StorageError:
        return explain(exc, self.bucket, self.endpoint)

    # Paths: Hive-style day partitions, so readers discover `date` from the path.
    @staticmethod
    def day_key(prefix: str, day: date, name: str) -> str:
        return f"{prefix}/date={day.isoformat()}/{name}"

    def raw_key(self, day: date, name: str = RAW_FILE) -> str:
        return self.day_key(self.raw_prefix, day, name)

    def curated_key(self, day: date, name: str = CURATED_FILE) -> str:
        return self.day_key(self.curated_prefix, day, name)

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def target(self, key: str) -> S3Target:
        return S3Target(self.url(key), client=self.client, format=luigi.format.Nop)

    @contextmanager
    def errors_explained(self) -> Iterator[None]:
        """Around uploads and downloads that go through Luigi's S3 code: its boto3 errors become one line."""
        try:
            yield
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self.fail(exc) from None

    def check(self) -> None:
        """Fail before any work if S3 is unreachable, the bucket is missing or credentials are wrong."""
        try:
            self.s3.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise self.fail(exc) from None

    def list_keys(self, prefix: str) -> Iterator[str]:
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", ()):
                    yield item["Key"]
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self.fail(exc) from None

    def manifest_key(self, prefix: str, day: date) -> str:
        return f"{prefix}/{MANIFESTS}/date={day.isoformat()}.json"

    def failure_key(self, prefix: str, day: date) -> str:
        """Written when a day's task fails, removed by its next success: `flixluigi status` shows it."""
        return f"{prefix}/{MANIFESTS}/date={day.isoformat()}.failed.json"

    def day_states(self, prefix: str) -> dict[date, str]:
        """'complete' or 'failed' for every day that has either, from one listing (1,000 days a request)."""
        states: dict[date, str] = {}
        for key in self.list_keys(f"{prefix}/{MANIFESTS}/date="):
            match = _MANIFEST_KEY.search(key)
            if match:
                day = date.fromisoformat(match.group(1))
                if states.get(day) != "complete":
                    states[day] = "failed" if match.group(2) else "complete"
        return states

    def complete_days(self, prefix: str) -> set[date]:
        return {day for day, state in self.day_states(prefix).items() if state == "complete"}

    def day_objects(self, prefix: str, day: date) -> list[str]:
        """The day's data objects and its manifest, if any."""
        keys = list(self.list_keys(f"{prefix}/date={day.isoformat()}/"))
        manifest = self.manifest_key(prefix, day)
        return [*keys, manifest] if self.exists(manifest) else keys

    def archive_day(self, prefixes: list[str], day: date, stamp: str) -> list[tuple[str, str]]:
        """Copy the day's objects under each prefix to `<archive>/<stamp>/...`; returns (key, copy) pairs."""
        pairs = [(key, f"{self.archive_prefix}/{stamp}/{key}") for prefix in prefixes for key in self.day_objects(prefix, day)]
        for key, copy in pairs:
            self.copy(key, copy)
        return pairs

    def restore(self, pairs: list[tuple[str, str]]) -> None:
        """Put archived copies back at their keys (the undo of a failed reprocessing)."""
        for key, copy in pairs:
            self.copy(copy, key)

    def copy(self, source: str, destination: str) -> None:
        try:
            self.s3.copy_object(Bucket=self.bucket, Key=destination, CopySource={"Bucket": self.bucket, "Key": source})
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self.fail(exc) from None

    def delete(self, key: str) -> None:
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=key)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self.fail(exc) from None

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

    def put_json(self, key: str, value: dict) -> None:
        try:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=orjson.dumps(value, option=orjson.OPT_INDENT_2),
                               ContentType="application/json")
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self.fail(exc) from None

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            if isinstance(exc, botocore.exceptions.ClientError) and exc.response.get("Error", {}).get("Code") == "NoSuchKey":
                raise StorageError(f"{self.url(key)} does not exist; run the day first") from None
            raise self.fail(exc) from None

    def get_json(self, key: str) -> dict:
        return orjson.loads(self.get_bytes(key))

    def read_buffer(self, key: str) -> pa.BufferReader:
        return pa.BufferReader(self.get_bytes(key))

    def open_gzip(self, key: str) -> IO[bytes]:
        """A streaming reader of a gzip object: bytes arrive as the body downloads."""
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self.fail(exc) from None
        return gzip.GzipFile(fileobj=body, mode="rb")
