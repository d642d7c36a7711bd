"""What the pipeline assumes of its S3 store, checked against the real SeaweedFS it runs on.

A Delta commit is a put-if-absent of `_delta_log/<version>.json`: two writers stay safe only if the
store refuses the second `If-None-Match: *` PUT of a key with 412. SeaweedFS let concurrent ones all
succeed until seaweedfs#8800 was fixed, which is why setup.cfg pins its version; these tests fail
if an upgrade brings that back. `scripts/seaweedfs.sh start` must return only once objects can be
written and read: the first request after it must not need a retry.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
import botocore
import botocore.config
import pytest
from botocore.exceptions import ClientError

from tests.conftest import ACCESS_KEY, BUCKET, SECRET_KEY, Seaweed
from tests.helpers import s3


def put_if_absent(client, key: str, body: bytes) -> int:
    """The HTTP status of a PUT with `If-None-Match: *` (412 when the key exists)."""
    try:
        return client.put_object(Bucket=BUCKET, Key=key, Body=body, IfNoneMatch="*")["ResponseMetadata"]["HTTPStatusCode"]
    except ClientError as error:
        assert error.response["Error"]["Code"] == "PreconditionFailed", error.response["Error"]
        return error.response["ResponseMetadata"]["HTTPStatusCode"]


def test_second_put_if_absent_of_a_key_gets_412(seaweed: Seaweed):
    client, key = s3(seaweed.endpoint), f"store/{uuid.uuid4().hex}/_delta_log/00000000000000000000.json"
    assert put_if_absent(client, key, b"first") == 200
    assert put_if_absent(client, key, b"second") == 412
    assert client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"first"


def test_concurrent_puts_if_absent_have_exactly_one_winner(seaweed: Seaweed):
    """Eight writers released together on one new key: one 200, seven 412, the winner's bytes stored.

    The barrier only makes the requests overlap; the assertions hold for every interleaving of a
    store that honours put-if-absent, and fail for one that lets several writers through.
    """
    writers, key = 8, f"store/{uuid.uuid4().hex}/_delta_log/00000000000000000001.json"
    clients = [s3(seaweed.endpoint) for _ in range(writers)]
    start = threading.Barrier(writers)

    def write(n: int) -> int:
        start.wait(timeout=30)
        return put_if_absent(clients[n], key, f"writer {n}".encode())

    with ThreadPoolExecutor(writers) as pool:
        statuses = list(pool.map(write, range(writers)))
    assert sorted(statuses) == [200] + [412] * (writers - 1), statuses
    stored = clients[0].get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert stored == f"writer {statuses.index(200)}".encode()


def test_first_request_after_start_needs_no_retry(tmp_path):
    """A fresh start, then a restart on the same data: each time the very next requests succeed."""
    server = Seaweed(tmp_path)
    once = boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                        region_name="us-east-1", config=botocore.config.Config(retries={"total_max_attempts": 1}))
    server.run("start")
    try:
        once.put_object(Bucket=BUCKET, Key="kept/object", Body=b"written before the restart")
        assert once.get_object(Bucket=BUCKET, Key="kept/object")["Body"].read() == b"written before the restart"
        server.run("stop")
        server.run("start")
        assert once.get_object(Bucket=BUCKET, Key="kept/object")["Body"].read() == b"written before the restart"
        assert put_if_absent(once, "kept/object", b"again") == 412
        assert once.list_objects_v2(Bucket=BUCKET, Prefix="_ready/")["KeyCount"] == 0, "the readiness probe left its object"
    finally:
        server.run("stop")



def test_only_the_pipelines_keys_get_in_and_its_bucket_cannot_be_dropped(seaweed: Seaweed):
    """scripts/seaweedfs.sh starts SeaweedFS with the identities file of devkit/s3identities.py, as
    docker-compose.yml does: without one, SeaweedFS's S3 takes anonymous requests. The pipeline's own
    keys do everything else in this suite; here, who else is refused."""
    client, key = s3(seaweed.endpoint), f"store/{uuid.uuid4().hex}"
    client.put_object(Bucket=BUCKET, Key=key, Body=b"kept")
    anonymous = boto3.client("s3", endpoint_url=seaweed.endpoint, region_name="us-east-1",
                             config=botocore.config.Config(signature_version=botocore.UNSIGNED))
    forged = boto3.client("s3", endpoint_url=seaweed.endpoint, region_name="us-east-1",
                          aws_access_key_id=ACCESS_KEY, aws_secret_access_key="not-the-secret")
    for name, outsider in (("anonymous", anonymous), ("wrong secret", forged)):
        for request in (lambda c: c.get_object(Bucket=BUCKET, Key=key), lambda c: c.list_objects_v2(Bucket=BUCKET),
                        lambda c: c.put_object(Bucket=BUCKET, Key=key, Body=b"replaced")):
            with pytest.raises(ClientError) as refused:
                request(outsider)
            assert refused.value.response["Error"]["Code"] in ("AccessDenied", "SignatureDoesNotMatch"), name
    # The identity's Write on its bucket includes DeleteBucket; -s3.allowDeleteBucketNotEmpty=false keeps the data.
    with pytest.raises(ClientError) as kept:
        client.delete_bucket(Bucket=BUCKET)
    assert kept.value.response["Error"]["Code"] == "BucketNotEmpty"
    assert client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"kept"
    client.delete_object(Bucket=BUCKET, Key=key)
