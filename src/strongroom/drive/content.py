"""File contents: encrypting uploads into blobs and decrypting byte ranges out of them.

An upload gets a fresh blob id and a fresh random key, wrapped by the tenant's
current key version. Plaintext is cut into fixed-size chunks, each encrypted
into one reused buffer and written at once, while SHA-256 runs over the
plaintext, so memory stays at about two chunks whatever the file size.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future

from strongroom.base.errors import IntegrityError, PayloadTooLarge
from strongroom.base.logging import get_logger
from strongroom.base.scoping import tenant_scoped_key
from strongroom.base.thread_pools import shared_pool
from strongroom.drive.models import BlobRow
from strongroom.storage import crypto
from strongroom.storage.blobs import BlobMissing, BlobReader, BlobStore, BlobWriter
from strongroom.tenancy.keys import TenantKey

log = get_logger(__name__)

# A feed at least this large hashes its plaintext in a thread of its own while it
# encrypts and writes. On the benchmark machine SHA-256 costs about eight times
# AES-GCM, so hashing in line limited the upload rate. A smaller feed is hashed in
# line, because handing it to a thread costs more than it saves.
HASH_ASIDE_BYTES = 256 * 1024
HASH_THREADS = 8


def blob_key(tenant_id: uuid.UUID, blob_id: uuid.UUID) -> str:
    hex_id = blob_id.hex
    return tenant_scoped_key(tenant_id, "blobs", hex_id[:2], hex_id)


class BlobUpload:
    """One blob being written. Feed plaintext, then `finish` or `abort`.

    `size_limit` bounds the plaintext; past it, `feed` aborts the upload and
    raises the error that `limit_error` builds from the size reached. A given
    `blob_id` makes a retried writer replace the blob it wrote before instead
    of adding another; by default each upload gets a fresh id.
    """

    def __init__(
        self,
        store: BlobStore,
        tenant_key: TenantKey,
        chunk_size: int,
        size_limit: int | None = None,
        limit_error: Callable[[int], Exception] | None = None,
        blob_id: uuid.UUID | None = None,
    ) -> None:
        self.tenant_id = tenant_key.tenant_id
        self.blob_id = blob_id or uuid.uuid4()
        self.size = 0
        self._key = crypto.generate_key()
        self._tenant_key = tenant_key
        self._chunk_size = chunk_size
        self._size_limit = size_limit
        self._limit_error = limit_error or _too_large(size_limit)
        self._sha256 = hashlib.sha256()
        self._store = store
        self._filled = 0
        # The chunk buffer, the encryptor and the file are made when the first bytes
        # arrive, so requests that open an upload and send nothing hold almost no memory.
        self._buffer = bytearray()
        # A whole chunk of the caller's bytes, kept by reference until the next feed or finish.
        self._pending_chunk: memoryview | None = None
        self._encryptor: crypto.ChunkEncryptor | None = None
        self._writer: BlobWriter | None = None

    def _open(self) -> tuple[crypto.ChunkEncryptor, BlobWriter]:
        if self._encryptor is None or self._writer is None:
            self._buffer = bytearray(self._chunk_size)
            self._encryptor = crypto.ChunkEncryptor(
                self._key, self.tenant_id, self.blob_id, self._chunk_size
            )
            self._writer = self._store.writer(blob_key(self.tenant_id, self.blob_id))
            self._writer.write(self._encryptor.header())
        return self._encryptor, self._writer

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        if self._size_limit is not None and self.size + len(view) > self._size_limit:
            self.abort()
            raise self._limit_error(self.size + len(view))
        self._open()
        self.size += len(view)
        hashing = _hash_aside(self._sha256, view)
        try:
            while view:
                # A full chunk is written only once more data arrives: until then it may
                # be the last chunk, which must carry the last-chunk flag.
                self._write_full_chunk()
                if self._filled == 0 and len(view) >= self._chunk_size and isinstance(data, bytes):
                    # Bytes cannot change, so a whole chunk of them waits without a copy.
                    self._pending_chunk = view[: self._chunk_size]
                    view = view[self._chunk_size :]
                    continue
                taken = min(self._chunk_size - self._filled, len(view))
                self._buffer[self._filled : self._filled + taken] = view[:taken]
                self._filled += taken
                view = view[taken:]
        finally:
            # The caller may reuse `data` once feed returns, so the hash must be done.
            if hashing is not None:
                hashing.result()

    def feed_pieces(self, pieces: Sequence[bytes | memoryview]) -> None:
        """Feed the pieces as one, joined outside the event loop.

        The join lets go of the GIL while it copies, and each whole chunk of the
        joined bytes then waits for its write without another copy.

        The last chunk of a feed stays a view of the feed's joined bytes until the
        next feed writes it, so an upload keeps one joined feed between feeds and
        two during the next join. Writing it before the join, or copying it out,
        freed that memory but made the benchmark's upload about 6 % slower, because
        the write then no longer ran beside the next feed's hashing.
        """
        self.feed(b"".join(pieces))

    def finish(self) -> tuple[BlobRow, str]:
        """Write the last chunk, sync and publish the blob; return its unsaved row and SHA-256."""
        _encryptor, writer = self._open()
        if self._pending_chunk is not None:
            self._write(self._pending_chunk, last=True)
        else:
            self._write_chunk(last=True)
        stored_size = writer.commit()
        wrapped = crypto.wrap_key(
            self._tenant_key.key,
            self._key,
            crypto.blob_key_context(self.tenant_id, self.blob_id, self._tenant_key.version),
        )
        row = BlobRow(
            tenant_id=self.tenant_id,
            id=self.blob_id,
            size=self.size,
            stored_size=stored_size,
            chunk_size=self._chunk_size,
            key_version=self._tenant_key.version,
            wrapped_key=wrapped,
        )
        return row, self._sha256.hexdigest()

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()

    def _write_full_chunk(self) -> None:
        """Write the full chunk that waits, held or in the buffer, as a chunk that is not the last."""
        if self._pending_chunk is not None:
            self._write(self._pending_chunk, last=False)
        elif self._filled == self._chunk_size:
            self._write_chunk(last=False)

    def _write_chunk(self, last: bool) -> None:
        self._write(memoryview(self._buffer)[: self._filled], last=last)
        self._filled = 0

    def _write(self, plaintext: memoryview, last: bool) -> None:
        encryptor, writer = self._open()
        writer.write(encryptor.encrypt(plaintext, last=last))
        self._pending_chunk = None


def _hash_aside(digest: hashlib._Hash, data: memoryview) -> Future[None] | None:
    """Start hashing `data` in the hash pool and return its future, or hash it now when small."""
    if len(data) < HASH_ASIDE_BYTES:
        digest.update(data)
        return None
    return shared_pool("strongroom-hash", HASH_THREADS).submit(digest.update, data)


def _too_large(limit: int | None) -> Callable[[int], Exception]:
    def build(size: int) -> Exception:
        return PayloadTooLarge(
            f"the upload reached {size} bytes, more than the {limit} allowed", limit=limit
        )

    return build


def unwrap_blob_key(blob: BlobRow, tenant_key: TenantKey) -> bytes:
    try:
        return crypto.unwrap_key(
            tenant_key.key,
            blob.wrapped_key,
            crypto.blob_key_context(blob.tenant_id, blob.id, blob.key_version),
        )
    except crypto.DecryptionFailed as exc:
        raise IntegrityError(
            f"the key of blob {blob.id} does not unwrap; the blob row is damaged or misplaced"
        ) from exc


def read_range(
    store: BlobStore, blob: BlobRow, tenant_key: TenantKey, start: int, end: int
) -> Iterator[bytes]:
    """Yield the plaintext bytes start..end (inclusive) of a blob, decrypting only the chunks needed.

    Raises IntegrityError, never returns wrong bytes, when the stored blob is
    missing, cut short or altered.
    """
    key = unwrap_blob_key(blob, tenant_key)
    decryptor = crypto.ChunkDecryptor(key, blob.tenant_id, blob.id, blob.chunk_size, blob.size)
    try:
        reader = store.reader(blob_key(blob.tenant_id, blob.id))
    except BlobMissing as exc:
        raise IntegrityError(
            f"the content of blob {blob.id} is missing from the blob store"
        ) from exc

    with reader:
        if reader.size != blob.stored_size:
            raise IntegrityError(
                f"blob {blob.id} is {reader.size} bytes in the store, {blob.stored_size} expected"
            )
        _check_header(reader.read_at(0, crypto.HEADER_BYTES), blob)
        if blob.size == 0:
            _decrypt(decryptor, reader, 0, blob, bytearray(crypto.CHUNK_OVERHEAD))
            return
        stored = bytearray(decryptor.stored_length(0))
        first, last = start // blob.chunk_size, end // blob.chunk_size
        for index in range(first, last + 1):
            plaintext = _decrypt(decryptor, reader, index, blob, stored)
            chunk_start = index * blob.chunk_size
            low = max(start - chunk_start, 0)
            high = min(end - chunk_start + 1, len(plaintext))
            yield plaintext if (low, high) == (0, len(plaintext)) else plaintext[low:high]


def _check_header(header: bytes, blob: BlobRow) -> None:
    try:
        chunk_size = crypto.decode_header(header)
    except crypto.DecryptionFailed as exc:
        raise IntegrityError(f"blob {blob.id} has a damaged header: {exc}") from exc
    if chunk_size != blob.chunk_size:
        raise IntegrityError(
            f"blob {blob.id} declares chunks of {chunk_size} bytes, its row {blob.chunk_size}"
        )


def _decrypt(
    decryptor: crypto.ChunkDecryptor,
    reader: BlobReader,
    index: int,
    blob: BlobRow,
    buffer: bytearray,
) -> bytes:
    """Read chunk `index` into `buffer`, reused for every chunk of the blob, and decrypt it."""
    offset = crypto.chunk_offset(index, blob.chunk_size)
    view = memoryview(buffer)[: decryptor.stored_length(index)]
    stored = view[: reader.read_into(offset, view)]
    try:
        return decryptor.decrypt(index, stored)
    except crypto.DecryptionFailed as exc:
        log.error("blob_decryption_failed", blob_id=str(blob.id), chunk=index, error=str(exc))
        raise IntegrityError(f"blob {blob.id} failed to decrypt at chunk {index}: {exc}") from exc
