"""Reading what the pipeline wrote, with plain boto3 and pyarrow (not the code under test)."""

from __future__ import annotations

import gzip
import json
import time

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import requests

from tests.conftest import ACCESS_KEY, BUCKET, SECRET_KEY, TIME_SCALE, TOKEN


def s3(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                        region_name="us-east-1")


def keys(endpoint: str, prefix: str) -> list[str]:
    pages = s3(endpoint).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))


def raw_pages(endpoint: str, key: str) -> list[dict]:
    body = s3(endpoint).get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return [json.loads(line) for line in gzip.decompress(body).splitlines()]


def parquet(endpoint: str, key: str) -> pa.Table:
    return pq.read_table(pa.BufferReader(s3(endpoint).get_object(Bucket=BUCKET, Key=key)["Body"].read()))


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


def all_strings(table: pa.Table) -> list[str]:
    """Every string value of every cell, list cells included."""
    values = []
    for column in table.columns:
        if pa.types.is_list(column.type):
            column = pa.chunked_array([chunk.flatten() for chunk in column.chunks], type=column.type.value_type)
        if pa.types.is_string(column.type):
            values += [v for v in column.to_pylist() if v is not None]
    return values


def manifest_key(run: str, layer: str, day, failed: bool = False) -> str:
    """Where a day's manifest (or failure marker) lives: `<layer>/tweets/_manifests/date=D.json`."""
    return f"{run}/{layer}/tweets/_manifests/date={day}{'.failed' if failed else ''}.json"
