"""Blob uploads: SHA-256 and content across feeds hashed in line and aside."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
import uuid
from pathlib import Path

import pytest

from strongroom.base.errors import PayloadTooLarge
from strongroom.drive.content import HASH_ASIDE_BYTES, BlobUpload, blob_key, read_range
from strongroom.storage import crypto
from strongroom.storage.blobs import LocalBlobStore
from strongroom.tenancy.keys import TenantKey

CHUNK_SIZE = 64 * 1024


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


@pytest.fixture
def tenant_key() -> TenantKey:
    return TenantKey(uuid.uuid4(), 1, crypto.generate_key())


def upload_in_feeds(
    store: LocalBlobStore, tenant_key: TenantKey, feeds: list[bytes], chunk_size: int = CHUNK_SIZE
) -> tuple[bytes, str]:
    """Store `feeds` as one blob; return its plaintext read back and the SHA-256 the upload gave."""
    upload = BlobUpload(store, tenant_key, chunk_size)
    for data in feeds:
        upload.feed(data)
    row, sha256 = upload.finish()
    content = b"".join(read_range(store, row, tenant_key, 0, row.size - 1))
    return content, sha256


def test_mixed_feed_sizes_hash_in_order(store: LocalBlobStore, tenant_key: TenantKey) -> None:
    # Small feeds are hashed in line and large ones aside, so a wrong order would show here.
    feeds = [
        os.urandom(100),
        os.urandom(HASH_ASIDE_BYTES),
        os.urandom(HASH_ASIDE_BYTES - 1),
        os.urandom(3 * HASH_ASIDE_BYTES + 17),
        os.urandom(1),
    ]
    plaintext = b"".join(feeds)

    content, sha256 = upload_in_feeds(store, tenant_key, feeds)

    assert sha256 == hashlib.sha256(plaintext).hexdigest()
    assert content == plaintext


def test_bytearray_feed_hashed_before_reuse(store: LocalBlobStore, tenant_key: TenantKey) -> None:
    # The caller overwrites its buffer after each feed, so the hash must be done when feed returns.
    buffer = bytearray(HASH_ASIDE_BYTES * 2)
    upload = BlobUpload(store, tenant_key, CHUNK_SIZE)
    expected = hashlib.sha256()
    for fill in (b"a", b"b", b"c"):
        buffer[:] = fill * len(buffer)
        expected.update(buffer)
        upload.feed(buffer)

    row, sha256 = upload.finish()

    assert sha256 == expected.hexdigest()
    assert row.size == 3 * len(buffer)


def test_size_limit_aborts_hashed_feed(store: LocalBlobStore, tenant_key: TenantKey) -> None:
    upload = BlobUpload(store, tenant_key, CHUNK_SIZE, size_limit=HASH_ASIDE_BYTES)
    upload.feed(os.urandom(HASH_ASIDE_BYTES))

    with pytest.raises(PayloadTooLarge):
        upload.feed(os.urandom(HASH_ASIDE_BYTES))

    assert not list(store.iter_keys(blob_key(tenant_key.tenant_id, upload.blob_id)))


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview"])
@pytest.mark.parametrize(
    "sizes",
    [
        [HASH_ASIDE_BYTES - 1, HASH_ASIDE_BYTES, HASH_ASIDE_BYTES + 1],
        [CHUNK_SIZE - 1, 5 * CHUNK_SIZE + 3, 1, HASH_ASIDE_BYTES * 3],
        [0, HASH_ASIDE_BYTES * 4 + CHUNK_SIZE // 2, 0],
    ],
    ids=["threshold", "chunk-edges", "empty-feeds"],
)
def test_feed_kinds_hash_plaintext(
    store: LocalBlobStore, tenant_key: TenantKey, kind: str, sizes: list[int]
) -> None:
    # A memoryview slice of a reused buffer, as a stream reader hands it over, starts
    # past the buffer's first byte and is overwritten once feed returns.
    buffer = bytearray(max(sizes) + 7)
    upload = BlobUpload(store, tenant_key, CHUNK_SIZE)
    expected = hashlib.sha256()
    plaintext = bytearray()
    for size in sizes:
        data = os.urandom(size)
        expected.update(data)
        plaintext += data
        buffer[7 : 7 + size] = data
        if kind == "bytes":
            upload.feed(data)
        elif kind == "bytearray":
            upload.feed(bytearray(data))
        else:
            upload.feed(memoryview(buffer)[7 : 7 + size])
        buffer[:] = b"\xff" * len(buffer)

    row, sha256 = upload.finish()
    content = b"".join(read_range(store, row, tenant_key, 0, row.size - 1))

    assert sha256 == expected.hexdigest()
    assert row.size == len(plaintext)
    assert content == plaintext


@pytest.mark.parametrize(
    "sizes",
    [[CHUNK_SIZE], [CHUNK_SIZE, CHUNK_SIZE], [2 * CHUNK_SIZE], [CHUNK_SIZE, 5], [5, CHUNK_SIZE]],
    ids=["one-chunk", "two-feeds", "two-in-one-feed", "then-short", "short-first"],
)
def test_whole_chunks_of_bytes_end_right(
    store: LocalBlobStore, tenant_key: TenantKey, sizes: list[int]
) -> None:
    # A whole chunk of bytes waits by reference. The chunk that ends the blob must carry
    # the last flag, because otherwise the reader takes the blob for cut short.
    feeds = [os.urandom(size) for size in sizes]

    content, sha256 = upload_in_feeds(store, tenant_key, feeds)

    assert content == b"".join(feeds)
    assert sha256 == hashlib.sha256(b"".join(feeds)).hexdigest()


def test_feed_pieces_joins_in_order(store: LocalBlobStore, tenant_key: TenantKey) -> None:
    first = os.urandom(CHUNK_SIZE)
    pieces = [first[:10], memoryview(first)[10:100], memoryview(first)[100:]]
    upload = BlobUpload(store, tenant_key, CHUNK_SIZE)

    upload.feed_pieces(pieces)
    upload.feed_pieces([b"tail"])
    row, sha256 = upload.finish()

    assert b"".join(read_range(store, row, tenant_key, 0, row.size - 1)) == first + b"tail"
    assert sha256 == hashlib.sha256(first + b"tail").hexdigest()


def test_feed_memory_bounded_across_feeds(store: LocalBlobStore, tenant_key: TenantKey) -> None:
    # The chunk held after a feed of four is a view of that feed's joined bytes, so one
    # joined feed stays alive between feeds, and two during a join, but never more.
    feed_bytes = 4 * CHUNK_SIZE
    upload = BlobUpload(store, tenant_key, CHUNK_SIZE)

    def four_chunks() -> list[memoryview]:
        data = memoryview(os.urandom(feed_bytes))
        return [data[start : start + 1000] for start in range(0, feed_bytes, 1000)]

    upload.feed_pieces(four_chunks())
    tracemalloc.start()
    try:
        between_feeds = []
        peaks = []
        for _ in range(8):
            pieces = four_chunks()
            before, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            upload.feed_pieces(pieces)
            del pieces
            _, peak = tracemalloc.get_traced_memory()
            peaks.append(peak - before)
            between_feeds.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    upload.abort()

    assert max(between_feeds) - min(between_feeds) < feed_bytes // 2
    assert max(peaks) < 2 * feed_bytes
