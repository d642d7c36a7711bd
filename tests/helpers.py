"""Reading what the pipeline wrote with plain boto3, pyarrow and deltalake (not the code under test)."""

from __future__ import annotations

import gzip
import io
import json
import re
import time

import boto3
import luigi
import pyarrow as pa
import pyarrow.dataset as ds
import requests
from deltalake import DeltaTable

from flixluigi.curation.pseudonym import PSEUDONYM_RE
from tests.conftest import ACCESS_KEY, BUCKET, SECRET_KEY, TIME_SCALE, TOKEN


def build(*tasks: luigi.Task, workers: int = 1) -> luigi.execution_summary.LuigiRunResult:
    return luigi.build(list(tasks), local_scheduler=True, detailed_summary=True, workers=workers)


def s3(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                        region_name="us-east-1")


def keys(endpoint: str, prefix: str) -> list[str]:
    pages = s3(endpoint).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))


def body(endpoint: str, key: str) -> bytes:
    return s3(endpoint).get_object(Bucket=BUCKET, Key=key)["Body"].read()


def decompress(key: str, data: bytes) -> bytes:
    if key.endswith(".zst"):
        return pa.CompressedInputStream(pa.BufferReader(data), "zstd").read()
    return gzip.decompress(data)


def raw_pages(endpoint: str, key: str) -> list[dict]:
    return [json.loads(line) for line in decompress(key, body(endpoint, key)).splitlines()]


def pointers(endpoint: str, run: str, day) -> list[str]:
    return keys(endpoint, f"{run}/raw/tweets/_pointers/date={day}/")


def current_fetch(endpoint: str, run: str, day) -> str:
    """The raw object the day's newest pointer names (pointer keys sort by time)."""
    newest = pointers(endpoint, run, day)[-1]
    fetch_id = re.search(r"--(.+)\.json$", newest).group(1)
    (key,) = [k for k in keys(endpoint, f"{run}/raw/tweets/date={day}/") if f"fetch={fetch_id}." in k]
    return key


def fetches(endpoint: str, run: str, day) -> list[str]:
    return keys(endpoint, f"{run}/raw/tweets/date={day}/")


def storage_options(endpoint: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}


def table(endpoint: str, run: str, version: int | None = None) -> DeltaTable:
    return DeltaTable(f"s3://{BUCKET}/{run}/curated/tweets", version=version, storage_options=storage_options(endpoint))


def curated(endpoint: str, run: str, day=None, version: int | None = None) -> pa.Table:
    """The curated rows (of one day), read through deltalake as a Delta reader does."""
    dataset = table(endpoint, run, version).to_pyarrow_dataset()
    return dataset.to_table(filter=ds.field("date") == pa.scalar(day, pa.date32())) if day else dataset.to_table()


def records(endpoint: str, run: str, day) -> list[dict]:
    return [json.loads(body(endpoint, key)) for key in keys(endpoint, f"{run}/records/curated/date={day}/")]


def parquet_bytes_everywhere(endpoint: str, prefix: str) -> list[bytes]:
    """Every object under a prefix, raw bytes (decompressed where they are raw fetches): for leak scans."""
    out = []
    for key in keys(endpoint, prefix):
        data = body(endpoint, key)
        out.append(decompress(key, data) if key.endswith((".gz", ".zst")) else data)
    return out


def sandbox_pages(base_url: str, params: dict, endpoint: str = "all") -> list[dict]:
    """Every page the sandbox serves for these parameters, fetched directly over HTTP.

    Each request waits the scaled second of the full-archive rule after the previous answer,
    as any client must (the rule is measured between arrivals, so this never meets it).
    """
    pages, params = [], dict(params)
    while True:
        time.sleep(TIME_SCALE)
        answer = requests.get(f"{base_url}/2/tweets/search/{endpoint}", params=params,
                              headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        answer.raise_for_status()
        pages.append(answer.json())
        token = pages[-1]["meta"].get("next_token")
        if not token:
            return pages
        params["next_token"] = token


def all_strings(rows: pa.Table) -> list[str]:
    """Every string value of every cell, list cells included."""
    values = []
    for column in rows.columns:
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            column = pa.chunked_array([chunk.flatten() for chunk in column.chunks], type=column.type.value_type)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            values += [v for v in column.to_pylist() if v is not None]
    return values


def failure_key(run: str, family: str, day) -> str:
    return f"{run}/records/failed/{family}/date={day}.json"


def parquet_of(data: bytes) -> pa.Table:
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(data))


def is_pseudonym(value: str) -> bool:
    """A value in the form the curated table's pseudonyms have (the gate's own pattern)."""
    return PSEUDONYM_RE.match(value) is not None
