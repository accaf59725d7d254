"""Raw messages kept for audit: gzip-compressed, in chunks, written and read as streams.

A message of hundreds of megabytes is never held whole: `RawTee` sits between the request body
and the parser, hashing and compressing what the parser reads and handing out ~1 MiB
compressed chunks as they fill; `ArchiveReader` reads a stored message back chunk by chunk
(for re-parsing when the message is applied, and for download). The chunks of one message
concatenate to one gzip file.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import select

from gateway.store.db import Database
from gateway.store.tables import SettlementMessageChunk

CHUNK_BYTES = 1024 * 1024
_GZIP = 31  # zlib wbits for a gzip container


class RawTee:
    """A readable stream over `source` that hashes, counts and compresses what passes.

    Compressed output is buffered until `attach(sink)` gives it somewhere to go (the message
    row is created only once the header has been read); from then on every full chunk goes to
    `sink(chunk)` at once. `finish()` flushes the compressor and returns the last chunk's bytes.
    """

    def __init__(self, source: Any, *, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.source = source
        self.chunk_bytes = chunk_bytes
        self.size = 0
        self.stored = 0
        self._sha = hashlib.sha256()
        self._compressor = zlib.compressobj(6, zlib.DEFLATED, _GZIP)
        self._pending = bytearray()
        self._sink: Callable[[bytes], None] | None = None

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        if data:
            self.size += len(data)
            self._sha.update(data)
            self._pending += self._compressor.compress(data)
            self._emit(final=False)
        return data

    def attach(self, sink: Callable[[bytes], None]) -> None:
        self._sink = sink
        self._emit(final=False)

    def drain(self, block: int = 256 * 1024) -> None:
        """Read the rest without parsing it (a resend only needs its hash)."""
        while self.read(block):
            pass

    def finish(self) -> None:
        self._pending += self._compressor.flush()
        self._emit(final=True)

    def _emit(self, *, final: bool) -> None:
        if self._sink is None:
            return
        while len(self._pending) >= self.chunk_bytes or (final and self._pending):
            chunk = bytes(self._pending[: self.chunk_bytes])
            del self._pending[: self.chunk_bytes]
            self.stored += len(chunk)
            self._sink(chunk)


def compress(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, _GZIP)
    return compressor.compress(data) + compressor.flush()


def stored_chunks(db: Database, message_pk: str) -> Iterator[bytes]:
    """The compressed chunks of a message in order, one short read transaction each."""
    seq = -1
    while True:
        with db.read() as session:
            row = session.execute(
                select(SettlementMessageChunk.seq, SettlementMessageChunk.data)
                .where(
                    SettlementMessageChunk.message_pk == message_pk,
                    SettlementMessageChunk.seq > seq,
                )
                .order_by(SettlementMessageChunk.seq)
                .limit(1)
            ).first()
        if row is None:
            return
        seq = row.seq
        yield bytes(row.data)


class ArchiveReader:
    """The original bytes of a stored message, decompressed on demand (a readable stream).

    Decompression proceeds in bounded steps (XML compresses 10-20x, so one stored chunk may
    expand to tens of megabytes).
    """

    STEP = 256 * 1024

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._decompressor = zlib.decompressobj(_GZIP)
        self._buffer = bytearray()
        self._tail = b""
        self._done = False

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._buffer) < size):
            if self._tail:
                self._buffer += self._decompressor.decompress(self._tail, self.STEP)
                self._tail = self._decompressor.unconsumed_tail
                continue
            chunk = next(self._chunks, None)
            if chunk is None:
                self._buffer += self._decompressor.flush()
                self._done = True
                break
            self._tail = chunk
        if size < 0:
            data = bytes(self._buffer)
            self._buffer.clear()
            return data
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data
