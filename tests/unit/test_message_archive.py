"""Raw messages are hashed, compressed and chunked as they stream, and read back exactly."""

from __future__ import annotations

import gzip
import hashlib
import io
import os

from gateway.store.message_archive import ArchiveReader, RawTee


def test_a_stream_is_archived_in_chunks_and_read_back_byte_for_byte() -> None:
    data = b"<Ntry>" * 50_000 + os.urandom(200_000)  # compressible, then not
    chunks: list[bytes] = []
    tee = RawTee(io.BytesIO(data), chunk_bytes=64 * 1024)
    head = tee.read(1000)  # before there is anywhere to put chunks (the header)
    tee.attach(chunks.append)
    rest = b""
    while block := tee.read(8192):
        rest += block
    tee.finish()
    assert head + rest == data
    assert tee.size == len(data)
    assert tee.sha256 == hashlib.sha256(data).hexdigest()
    assert len(chunks) > 3 and all(len(c) <= 64 * 1024 for c in chunks)
    assert tee.stored == sum(map(len, chunks))
    assert gzip.decompress(b"".join(chunks)) == data  # one gzip file, downloadable as is
    reader = ArchiveReader(iter(chunks))
    parts = []
    while part := reader.read(7777):
        assert len(part) <= 7777
        parts.append(part)
    assert b"".join(parts) == data


def test_a_resend_is_only_hashed() -> None:
    data = b"x" * 100_000
    tee = RawTee(io.BytesIO(data))
    tee.read(10)
    tee.drain()
    assert tee.sha256 == hashlib.sha256(data).hexdigest()
    assert tee.stored == 0
