"""SeaweedFS's S3 identities file (`weed ... -s3.config FILE`): one identity, limited to one bucket.

Without an identities file SeaweedFS's S3 gateway accepts anonymous requests; with one it checks
every request's signature and the identity's actions. The pipeline gets Read, Write and List on
its bucket and nothing else (no Admin: it cannot create, delete or list buckets), which is all it
needs: reads, multipart and conditional PUTs, listings, deletes and Delta commits (tests run the
whole pipeline against a local `weed mini` started with this file). docker-compose.yml writes the
same document inline from .env; tests/test_deploy.py holds Compose's rendering of it to this one.

    python -m devkit.s3identities BUCKET FILE   # keys from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ACTIONS = ("Read", "Write", "List")


def identities(access_key: str, secret_key: str, bucket: str) -> dict:
    """The identities document: the pipeline's keys with Read, Write and List on `bucket` only."""
    return {"identities": [{"name": "flixluigi-pipeline",
                            "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                            "actions": [f"{action}:{bucket}" for action in ACTIONS]}]}


def write(path: Path, access_key: str, secret_key: str, bucket: str) -> Path:
    """Writes the file readable by its owner only: it holds the secret key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an existing file keeps its old mode otherwise
    with os.fdopen(descriptor, "w") as out:
        json.dump(identities(access_key, secret_key, bucket), out, indent=2)
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    access_key, secret_key = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if len(args) != 2 or not access_key or not secret_key:
        print("usage: AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... python -m devkit.s3identities BUCKET FILE", file=sys.stderr)
        return 2
    write(Path(args[1]), access_key, secret_key, args[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
