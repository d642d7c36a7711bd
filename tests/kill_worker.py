"""Runs `luigi --module flixluigi ...` in this process and SIGKILLs it at a named point.

Used by test_faults: `python tests/kill_worker.py POINT Task --date D`. The points wrap the real
code (nothing is mocked away): the process dies exactly where a crash would hit it.
"""

from __future__ import annotations

import os
import signal
import sys

import luigi.cmdline
from luigi.contrib.s3 import S3Client

from flixluigi.storage import Storage
from flixluigi.xapi import XClient


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def wrap(owner: object, name: str, when) -> None:
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        if when(*args, **kwargs):
            die()
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def main() -> None:
    point, args = sys.argv[1], sys.argv[2:]
    pages = iter(range(10_000))
    if point == "fetch":  # on the third page of the day
        wrap(XClient, "_page", lambda self, path, params: "/search/" in path and next(pages) == 2)
    elif point == "raw-upload":  # as the gzip object starts to upload
        wrap(S3Client, "put_multipart", lambda self, local, dest, *a, **k: "/raw/" in dest)
    elif point == "raw-manifest":  # after the raw object is stored, before its manifest
        wrap(Storage, "put_json", lambda self, key, value: "/raw/" in key and "/_manifests/" in key)
    elif point == "curation":  # in the middle of writing Parquet
        wrap(sys.modules["flixluigi.curate"], "check_batch", lambda batch, stats: True)
    elif point == "curated-upload":
        wrap(S3Client, "put_multipart", lambda self, local, dest, *a, **k: "/curated/" in dest)
    else:
        raise SystemExit(f"unknown kill point {point}")
    luigi.cmdline.luigi_run(["--module", "flixluigi", *args, "--local-scheduler"])


if __name__ == "__main__":
    main()
