"""Chunked AES-256-GCM for blob contents, and AES-256-GCM key wrapping.

Blob layout: a fixed header, then chunks. Every chunk but the last holds
exactly `chunk_size` plaintext bytes; the last holds 1 to `chunk_size` bytes,
and only an empty blob has an empty chunk, its one and last. On disk a chunk is
`nonce (12) | ciphertext | tag (16)`, so chunk `i` starts at a known offset
and a byte range decrypts only the chunks it touches.

Each chunk's associated data binds the tenant id, the blob id, the chunk size,
the chunk index and a last-chunk flag. A chunk that is altered, swapped with
another, moved to another blob or tenant, or a blob cut short after any chunk
(the new final chunk lacks the last flag) fails with `DecryptionFailed`,
never with wrong plaintext.

Keys form a hierarchy: the master key wraps each tenant key version, and a
tenant key wraps one random key per blob. Wrapping is AES-GCM too, with
associated data naming what the wrapped key belongs to, so a wrapped key
copied to another tenant or blob does not unwrap.
"""

from __future__ import annotations

import os
import struct
import uuid
from collections.abc import Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
CHUNK_OVERHEAD = NONCE_BYTES + TAG_BYTES

MAGIC = b"SRB\x01"
HEADER = struct.Struct(">4sI")  # magic, chunk size
HEADER_BYTES = HEADER.size
_AAD_PREFIX = b"strongroom/blob-chunk/v1"
_AAD = struct.Struct(f">{len(_AAD_PREFIX)}s16s16sIQ?")
_TAIL_AAD_PREFIX = b"strongroom/upload-tail/v1"
_TAIL_AAD = struct.Struct(f">{len(_TAIL_AAD_PREFIX)}s16s16sQ")


class DecryptionFailed(Exception):
    """A ciphertext or wrapped key failed authentication: altered, misplaced or under the wrong key."""


def generate_key() -> bytes:
    return os.urandom(KEY_BYTES)


# Key wrapping -------------------------------------------------------------------------


def tenant_key_context(tenant_id: uuid.UUID, version: int) -> bytes:
    return b"strongroom/tenant-key/v1|" + tenant_id.bytes + struct.pack(">I", version)


def blob_key_context(tenant_id: uuid.UUID, blob_id: uuid.UUID, key_version: int) -> bytes:
    return (
        b"strongroom/blob-key/v1|"
        + tenant_id.bytes
        + blob_id.bytes
        + struct.pack(">I", key_version)
    )


def wrap_key(wrapping_key: bytes, key: bytes, context: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(wrapping_key).encrypt(nonce, key, context)


def unwrap_key(wrapping_key: bytes, wrapped: bytes, context: bytes) -> bytes:
    nonce, sealed = wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:]
    try:
        return AESGCM(wrapping_key).decrypt(nonce, sealed, context)
    except InvalidTag:
        raise DecryptionFailed("wrapped key failed authentication") from None


def derive_key(master_key: bytes, purpose: bytes) -> bytes:
    """Derive a key for one purpose other than wrapping, with HKDF-SHA256 (RFC 5869).

    Keys derived for different purposes are independent, so the master key
    never serves two uses directly.
    """
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose).derive(
        master_key
    )


# Chunk geometry -----------------------------------------------------------------------


def chunk_count(plaintext_size: int, chunk_size: int) -> int:
    """Number of chunks for a plaintext; an empty plaintext still has one (empty, last) chunk."""
    return max(1, -(-plaintext_size // chunk_size))


def encrypted_size(plaintext_size: int, chunk_size: int) -> int:
    return HEADER_BYTES + plaintext_size + chunk_count(plaintext_size, chunk_size) * CHUNK_OVERHEAD


def chunk_offset(index: int, chunk_size: int) -> int:
    return HEADER_BYTES + index * (chunk_size + CHUNK_OVERHEAD)


def encode_header(chunk_size: int) -> bytes:
    return HEADER.pack(MAGIC, chunk_size)


def decode_header(header: bytes) -> int:
    """Return the chunk size a blob header declares."""
    if len(header) != HEADER_BYTES:
        raise DecryptionFailed("blob is shorter than its header")
    magic, chunk_size = HEADER.unpack(header)
    if magic != MAGIC:
        raise DecryptionFailed("blob header has an unknown format marker")
    if not 0 < chunk_size <= 64 * 1024 * 1024:
        raise DecryptionFailed(f"blob header declares an impossible chunk size {chunk_size}")
    return chunk_size


def chunk_aad(
    tenant_id: uuid.UUID, blob_id: uuid.UUID, chunk_size: int, index: int, last: bool
) -> bytes:
    return _AAD.pack(_AAD_PREFIX, tenant_id.bytes, blob_id.bytes, chunk_size, index, last)


# Streaming encryption -----------------------------------------------------------------


class ChunkEncryptor:
    """Encrypts a stream of plaintext chunks for one blob, reusing one output buffer.

    The caller feeds full chunks with `encrypt(data, last=False)` and ends with
    exactly one `encrypt(data, last=True)`. The returned memoryview is valid
    until the next call. A blob written over several requests starts each
    request's encryptor at the index of its first new chunk.
    """

    def __init__(
        self,
        key: bytes,
        tenant_id: uuid.UUID,
        blob_id: uuid.UUID,
        chunk_size: int,
        first_index: int = 0,
    ) -> None:
        self._aead = AESGCM(key)
        self._tenant_id = tenant_id
        self._blob_id = blob_id
        self._chunk_size = chunk_size
        self._index = first_index
        self._finished = False
        self._buffer = bytearray(chunk_size + CHUNK_OVERHEAD)

    def header(self) -> bytes:
        return encode_header(self._chunk_size)

    def encrypt(self, plaintext: bytes | bytearray | memoryview, last: bool) -> memoryview:
        if self._finished:
            raise RuntimeError("blob already ended with its last chunk")
        size = len(plaintext)
        if size > self._chunk_size or (not last and size != self._chunk_size):
            raise ValueError(
                f"chunk {self._index} has {size} bytes; only the last chunk may differ "
                f"from the chunk size {self._chunk_size}"
            )
        if last and size == 0 and self._index > 0:
            # The reader derives the chunk count from the plaintext size, which would
            # make the previous full chunk the last one: mark that chunk last instead.
            raise ValueError("an empty last chunk may only end an empty blob")
        nonce = os.urandom(NONCE_BYTES)
        aad = chunk_aad(self._tenant_id, self._blob_id, self._chunk_size, self._index, last)
        out = memoryview(self._buffer)[: NONCE_BYTES + size + TAG_BYTES]
        out[:NONCE_BYTES] = nonce
        self._aead.encrypt_into(nonce, plaintext, aad, out[NONCE_BYTES:])
        self._index += 1
        self._finished = last
        return out


class ChunkDecryptor:
    """Decrypts single chunks of one blob."""

    def __init__(
        self,
        key: bytes,
        tenant_id: uuid.UUID,
        blob_id: uuid.UUID,
        chunk_size: int,
        plaintext_size: int,
    ) -> None:
        self._aead = AESGCM(key)
        self._tenant_id = tenant_id
        self._blob_id = blob_id
        self.chunk_size = chunk_size
        self.plaintext_size = plaintext_size
        self.chunks = chunk_count(plaintext_size, chunk_size)

    def stored_length(self, index: int) -> int:
        """Bytes chunk `index` occupies on disk."""
        if index == self.chunks - 1:
            return self.plaintext_size - index * self.chunk_size + CHUNK_OVERHEAD
        return self.chunk_size + CHUNK_OVERHEAD

    def decrypt(self, index: int, stored: bytes | bytearray | memoryview) -> bytes:
        """Return the plaintext of chunk `index` as a new bytes object.

        A download hands each chunk to the socket as `bytes`, which stays
        unchanged while the event loop may still hold it. Decrypting straight
        into a new object writes the plaintext once, where decrypting into a
        reused buffer and copying it out wrote it twice, about 1.5 times as
        slow per MiB on this project's 2-core machines.
        """
        if len(stored) != self.stored_length(index):
            raise DecryptionFailed(
                f"chunk {index} is {len(stored)} bytes, expected {self.stored_length(index)}"
            )
        stored_view = memoryview(stored)
        nonce = stored_view[:NONCE_BYTES]
        last = index == self.chunks - 1
        aad = chunk_aad(self._tenant_id, self._blob_id, self.chunk_size, index, last)
        try:
            return self._aead.decrypt(bytes(nonce), stored_view[NONCE_BYTES:], aad)
        except InvalidTag:
            raise DecryptionFailed(f"chunk {index} failed authentication") from None


def iter_chunks(data: bytes, chunk_size: int) -> Iterator[tuple[bytes, bool]]:
    """Split an in-memory plaintext into (chunk, last) pairs, for small blobs and tests."""
    count = chunk_count(len(data), chunk_size)
    for index in range(count):
        yield data[index * chunk_size : (index + 1) * chunk_size], index == count - 1


# Unfinished chunks of resumable uploads ----------------------------------------------


def tail_aad(tenant_id: uuid.UUID, blob_id: uuid.UUID, end_offset: int) -> bytes:
    return _TAIL_AAD.pack(_TAIL_AAD_PREFIX, tenant_id.bytes, blob_id.bytes, end_offset)


def seal_tail(
    key: bytes, tenant_id: uuid.UUID, blob_id: uuid.UUID, end_offset: int, plaintext: bytes
) -> bytes:
    """Encrypt the unfinished chunk that ends a partial blob at plaintext offset `end_offset`.

    The associated data differs from every blob chunk's, so a tail can never
    be read as a chunk of the finished blob, and it names the offset, so a
    tail left by an earlier request does not decrypt in place of the current one.
    """
    nonce = os.urandom(NONCE_BYTES)
    aad = tail_aad(tenant_id, blob_id, end_offset)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_tail(
    key: bytes, tenant_id: uuid.UUID, blob_id: uuid.UUID, end_offset: int, sealed: bytes
) -> bytes:
    nonce, ciphertext = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, tail_aad(tenant_id, blob_id, end_offset))
    except InvalidTag:
        raise DecryptionFailed(
            f"the unfinished chunk ending at offset {end_offset} failed authentication"
        ) from None
