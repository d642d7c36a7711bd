"""The raw fetch's codecs: JSON lines compressed on their way into an upload, and read back as a
stream, whatever codec a stored fetch was written with (its name says: `.zst`, else gzip)."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import pyarrow as pa

from flixluigi.store.s3 import Storage


@contextmanager
def compressed(sink: IO[bytes], codec: str) -> Iterator[IO[bytes]]:
    """zstd (through pyarrow, no extra package) or gzip around an upload. zstd at pyarrow's default
    level (1): writing a day costs 0.16x its curation for the smallest objects measured; gzip 6,
    kept for `raw_codec = gz`, costs 0.8x (benchmarks/curate.py). `zstd -dc` and `zcat` read them."""
    if codec == "zst":
        stream = pa.CompressedOutputStream(pa.PythonFile(sink, mode="w"), "zstd")
        yield stream
        stream.close()
    else:
        with gzip.GzipFile(fileobj=sink, mode="wb", mtime=0, compresslevel=6) as stream:
            yield stream


class _NativeReader(io.RawIOBase):
    """pyarrow's zstd stream as a Python raw stream, so io.BufferedReader gives it readline()."""

    def __init__(self, stream: pa.NativeFile):
        self.stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        data = self.stream.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def open_raw(store: Storage, key: str) -> IO[bytes]:
    """A streaming reader of a stored fetch, whatever codec it was written with."""
    return decompressed(store.open(key), key)


def decompressed(body: IO[bytes], name: str) -> IO[bytes]:
    """The JSON lines of a compressed fetch body; the codec is the name's (`.zst`, else gzip)."""
    if name.endswith(".zst"):
        return io.BufferedReader(_NativeReader(pa.CompressedInputStream(pa.PythonFile(body, mode="r"), "zstd")), 1 << 20)
    return gzip.GzipFile(fileobj=body, mode="rb")
