"""Tests for chunked AES-256-GCM blob encryption and AES-GCM key wrapping."""

from __future__ import annotations

import random
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.storage.crypto import (
    CHUNK_OVERHEAD,
    HEADER,
    HEADER_BYTES,
    MAGIC,
    NONCE_BYTES,
    TAG_BYTES,
    ChunkDecryptor,
    ChunkEncryptor,
    DecryptionFailed,
    blob_key_context,
    chunk_offset,
    decode_header,
    encode_header,
    encrypted_size,
    generate_key,
    iter_chunks,
    open_tail,
    seal_tail,
    tenant_key_context,
    unwrap_key,
    wrap_key,
)

CHUNK_SIZE = 4096
TENANT = uuid.UUID("11111111-1111-4111-8111-111111111111")
OTHER_TENANT = uuid.UUID("22222222-2222-4222-8222-222222222222")
BLOB = uuid.UUID("33333333-3333-4333-8333-333333333333")
OTHER_BLOB = uuid.UUID("44444444-4444-4444-8444-444444444444")
KEY = generate_key()
OTHER_KEY = generate_key()

# Three full chunks and a last chunk of 100 bytes, so tampering can hit a full
# chunk or the shorter last one.
MULTI_CHUNK_SIZE = 3 * CHUNK_SIZE + 100
LAST_INDEX = 3
LAST_CHUNK_PLAINTEXT = 100

ROUND_TRIP_SIZES = [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE]

# Small chunks let the property tests reach several chunks with short plaintexts.
PROPERTY_CHUNK_SIZE = 64
property_plaintexts = st.binary(max_size=4 * PROPERTY_CHUNK_SIZE)


def make_plaintext(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def encrypt_blob(
    plaintext: bytes,
    key: bytes = KEY,
    tenant_id: uuid.UUID = TENANT,
    blob_id: uuid.UUID = BLOB,
    chunk_size: int = CHUNK_SIZE,
) -> bytes:
    encryptor = ChunkEncryptor(key, tenant_id, blob_id, chunk_size)
    parts = [encryptor.header()]
    for chunk, last in iter_chunks(plaintext, chunk_size):
        parts.append(bytes(encryptor.encrypt(chunk, last)))
    return b"".join(parts)


def decrypt_blob(
    blob: bytes,
    plaintext_size: int,
    key: bytes = KEY,
    tenant_id: uuid.UUID = TENANT,
    blob_id: uuid.UUID = BLOB,
) -> bytes:
    """Decrypt a whole blob as a reader does: the chunk size comes from the header
    and the plaintext size from the blob's metadata."""
    chunk_size = decode_header(blob[:HEADER_BYTES])
    decryptor = ChunkDecryptor(key, tenant_id, blob_id, chunk_size, plaintext_size)
    parts = []
    for index in range(decryptor.chunks):
        start = chunk_offset(index, chunk_size)
        stored = blob[start : start + decryptor.stored_length(index)]
        parts.append(bytes(decryptor.decrypt(index, stored)))
    return b"".join(parts)


def flip_bit(data: bytes, bit_index: int) -> bytes:
    flipped = bytearray(data)
    flipped[bit_index // 8] ^= 1 << (bit_index % 8)
    return bytes(flipped)


def stored_chunk_length(index: int) -> int:
    if index == LAST_INDEX:
        return LAST_CHUNK_PLAINTEXT + CHUNK_OVERHEAD
    return CHUNK_SIZE + CHUNK_OVERHEAD


def first_nonce_byte(index: int) -> int:
    return chunk_offset(index, CHUNK_SIZE)


def first_ciphertext_byte(index: int) -> int:
    return chunk_offset(index, CHUNK_SIZE) + NONCE_BYTES


def first_tag_byte(index: int) -> int:
    return chunk_offset(index, CHUNK_SIZE) + stored_chunk_length(index) - TAG_BYTES


tampered_chunks = pytest.mark.parametrize("index", [0, LAST_INDEX], ids=["full", "last"])


# Round trip and geometry ---------------------------------------------------------------


@pytest.mark.parametrize("size", ROUND_TRIP_SIZES)
def test_blob_round_trip_restores_plaintext(size: int) -> None:
    plaintext = make_plaintext(size)
    blob = encrypt_blob(plaintext)

    restored = decrypt_blob(blob, size)

    assert restored == plaintext


@pytest.mark.parametrize("size", ROUND_TRIP_SIZES)
def test_encrypted_size_matches_output(size: int) -> None:
    blob = encrypt_blob(make_plaintext(size))

    expected = encrypted_size(size, CHUNK_SIZE)

    assert len(blob) == expected


@pytest.mark.parametrize("index", range(LAST_INDEX + 1))
def test_chunk_offset_locates_chunk(index: int) -> None:
    plaintext = make_plaintext(MULTI_CHUNK_SIZE)
    blob = encrypt_blob(plaintext)
    decryptor = ChunkDecryptor(KEY, TENANT, BLOB, CHUNK_SIZE, MULTI_CHUNK_SIZE)
    start = chunk_offset(index, CHUNK_SIZE)

    chunk = decryptor.decrypt(index, blob[start : start + decryptor.stored_length(index)])

    assert bytes(chunk) == plaintext[index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE]


# Tampering and misplacement -------------------------------------------------------------


@tampered_chunks
def test_decryptor_rejects_flipped_ciphertext_bit(index: int) -> None:
    blob = encrypt_blob(make_plaintext(MULTI_CHUNK_SIZE))
    tampered = flip_bit(blob, first_ciphertext_byte(index) * 8 + 5)

    with pytest.raises(DecryptionFailed):
        decrypt_blob(tampered, MULTI_CHUNK_SIZE)


@tampered_chunks
def test_decryptor_rejects_flipped_nonce_bit(index: int) -> None:
    blob = encrypt_blob(make_plaintext(MULTI_CHUNK_SIZE))
    tampered = flip_bit(blob, first_nonce_byte(index) * 8 + 3)

    with pytest.raises(DecryptionFailed):
        decrypt_blob(tampered, MULTI_CHUNK_SIZE)


@tampered_chunks
def test_decryptor_rejects_flipped_tag_bit(index: int) -> None:
    blob = encrypt_blob(make_plaintext(MULTI_CHUNK_SIZE))
    tampered = flip_bit(blob, first_tag_byte(index) * 8 + 7)

    with pytest.raises(DecryptionFailed):
        decrypt_blob(tampered, MULTI_CHUNK_SIZE)


def test_decryptor_rejects_swapped_chunks() -> None:
    blob = encrypt_blob(make_plaintext(MULTI_CHUNK_SIZE))
    first = blob[chunk_offset(0, CHUNK_SIZE) : chunk_offset(1, CHUNK_SIZE)]
    second = blob[chunk_offset(1, CHUNK_SIZE) : chunk_offset(2, CHUNK_SIZE)]
    swapped = blob[:HEADER_BYTES] + second + first + blob[chunk_offset(2, CHUNK_SIZE) :]

    with pytest.raises(DecryptionFailed):
        decrypt_blob(swapped, MULTI_CHUNK_SIZE)


def test_decryptor_rejects_blob_without_last_chunk() -> None:
    blob = encrypt_blob(make_plaintext(3 * CHUNK_SIZE))
    truncated = blob[: chunk_offset(2, CHUNK_SIZE)]

    # The plaintext size is shortened with the blob, as a reader that derives it
    # from the stored length would see it. The remaining chunks are well formed,
    # so only the missing last flag on chunk 1 can reveal the truncation.
    with pytest.raises(DecryptionFailed):
        decrypt_blob(truncated, 2 * CHUNK_SIZE)


def test_decryptor_rejects_missing_chunk_at_recorded_size() -> None:
    blob = encrypt_blob(make_plaintext(3 * CHUNK_SIZE))
    truncated = blob[: chunk_offset(2, CHUNK_SIZE)]

    with pytest.raises(DecryptionFailed):
        decrypt_blob(truncated, 3 * CHUNK_SIZE)


def test_decryptor_rejects_blob_cut_mid_chunk() -> None:
    blob = encrypt_blob(make_plaintext(MULTI_CHUNK_SIZE))
    cut = blob[:-10]

    with pytest.raises(DecryptionFailed):
        decrypt_blob(cut, MULTI_CHUNK_SIZE)


def test_decryptor_rejects_cut_chunk_at_shortened_size() -> None:
    blob = encrypt_blob(make_plaintext(MULTI_CHUNK_SIZE))
    cut = blob[:-10]

    # With the size shortened by the same 10 bytes the cut last chunk has the
    # expected length, so only its authentication tag can reject it.
    with pytest.raises(DecryptionFailed):
        decrypt_blob(cut, MULTI_CHUNK_SIZE - 10)


def test_decryptor_rejects_other_tenant_id() -> None:
    blob = encrypt_blob(make_plaintext(MULTI_CHUNK_SIZE))

    # The same bytes and blob key, copied under another tenant.
    with pytest.raises(DecryptionFailed):
        decrypt_blob(blob, MULTI_CHUNK_SIZE, tenant_id=OTHER_TENANT)


def test_decryptor_rejects_other_blob_id() -> None:
    blob = encrypt_blob(make_plaintext(MULTI_CHUNK_SIZE))

    with pytest.raises(DecryptionFailed):
        decrypt_blob(blob, MULTI_CHUNK_SIZE, blob_id=OTHER_BLOB)


def test_decryptor_rejects_other_key() -> None:
    blob = encrypt_blob(make_plaintext(MULTI_CHUNK_SIZE))

    with pytest.raises(DecryptionFailed):
        decrypt_blob(blob, MULTI_CHUNK_SIZE, key=OTHER_KEY)


def test_decryptor_rejects_other_chunk_size() -> None:
    # A one-chunk blob is stored with the same length under either chunk size,
    # so the chunk size in the associated data is what rejects it.
    blob = encrypt_blob(make_plaintext(100))
    stored = blob[HEADER_BYTES:]
    decryptor = ChunkDecryptor(KEY, TENANT, BLOB, 2 * CHUNK_SIZE, 100)

    with pytest.raises(DecryptionFailed):
        decryptor.decrypt(0, stored)


def test_decryptor_rejects_rewritten_header_chunk_size() -> None:
    blob = encrypt_blob(make_plaintext(100))
    rewritten = encode_header(2 * CHUNK_SIZE) + blob[HEADER_BYTES:]

    with pytest.raises(DecryptionFailed):
        decrypt_blob(rewritten, 100)


# Header ---------------------------------------------------------------------------------


def test_decode_header_returns_chunk_size() -> None:
    header = encode_header(CHUNK_SIZE)

    chunk_size = decode_header(header)

    assert chunk_size == CHUNK_SIZE


def test_decode_header_rejects_wrong_magic() -> None:
    header = HEADER.pack(b"SRB\x02", CHUNK_SIZE)

    with pytest.raises(DecryptionFailed):
        decode_header(header)


@pytest.mark.parametrize("chunk_size", [0, 64 * 1024 * 1024 + 1, 2**32 - 1])
def test_decode_header_rejects_impossible_chunk_size(chunk_size: int) -> None:
    header = HEADER.pack(MAGIC, chunk_size)

    with pytest.raises(DecryptionFailed):
        decode_header(header)


def test_decode_header_rejects_short_header() -> None:
    header = encode_header(CHUNK_SIZE)[:-1]

    with pytest.raises(DecryptionFailed):
        decode_header(header)


# Encryptor input checks -----------------------------------------------------------------


@pytest.mark.parametrize("size", [0, CHUNK_SIZE - 1, CHUNK_SIZE + 1])
def test_encryptor_rejects_wrong_size_non_last_chunk(size: int) -> None:
    encryptor = ChunkEncryptor(KEY, TENANT, BLOB, CHUNK_SIZE)

    with pytest.raises(ValueError):
        encryptor.encrypt(make_plaintext(size), last=False)


def test_encryptor_rejects_oversized_last_chunk() -> None:
    encryptor = ChunkEncryptor(KEY, TENANT, BLOB, CHUNK_SIZE)

    with pytest.raises(ValueError):
        encryptor.encrypt(make_plaintext(CHUNK_SIZE + 1), last=True)


def test_encryptor_rejects_chunk_after_last() -> None:
    encryptor = ChunkEncryptor(KEY, TENANT, BLOB, CHUNK_SIZE)
    encryptor.encrypt(make_plaintext(10), last=True)

    with pytest.raises(RuntimeError):
        encryptor.encrypt(make_plaintext(10), last=True)


def test_encryptor_rejects_empty_chunk_after_full() -> None:
    # A streaming caller that reaches end of input right after a full chunk
    # sends this sequence for a plaintext of exactly one chunk.
    encryptor = ChunkEncryptor(KEY, TENANT, BLOB, CHUNK_SIZE)
    encryptor.encrypt(make_plaintext(CHUNK_SIZE), last=False)

    with pytest.raises(ValueError):
        encryptor.encrypt(b"", last=True)


# Key wrapping ---------------------------------------------------------------------------


def test_unwrap_key_restores_key() -> None:
    blob_key = generate_key()
    context = blob_key_context(TENANT, BLOB, 1)
    wrapped = wrap_key(KEY, blob_key, context)

    unwrapped = unwrap_key(KEY, wrapped, context)

    assert unwrapped == blob_key


@pytest.mark.parametrize(
    ("wrap_context", "unwrap_context"),
    [
        (blob_key_context(TENANT, BLOB, 1), blob_key_context(OTHER_TENANT, BLOB, 1)),
        (blob_key_context(TENANT, BLOB, 1), blob_key_context(TENANT, OTHER_BLOB, 1)),
        (blob_key_context(TENANT, BLOB, 1), blob_key_context(TENANT, BLOB, 2)),
        (tenant_key_context(TENANT, 1), tenant_key_context(OTHER_TENANT, 1)),
        (tenant_key_context(TENANT, 1), tenant_key_context(TENANT, 2)),
        (tenant_key_context(TENANT, 1), blob_key_context(TENANT, BLOB, 1)),
    ],
    ids=[
        "blob-key-other-tenant",
        "blob-key-other-blob",
        "blob-key-other-version",
        "tenant-key-other-tenant",
        "tenant-key-other-version",
        "tenant-key-as-blob-key",
    ],
)
def test_unwrap_key_rejects_other_context(wrap_context: bytes, unwrap_context: bytes) -> None:
    wrapped = wrap_key(KEY, generate_key(), wrap_context)

    with pytest.raises(DecryptionFailed):
        unwrap_key(KEY, wrapped, unwrap_context)


def test_unwrap_key_rejects_other_wrapping_key() -> None:
    context = blob_key_context(TENANT, BLOB, 1)
    wrapped = wrap_key(KEY, generate_key(), context)

    with pytest.raises(DecryptionFailed):
        unwrap_key(OTHER_KEY, wrapped, context)


# Properties -----------------------------------------------------------------------------

# No deadline, because a flipped header bit can declare a chunk size of tens of
# MiB and the decryptor allocates a buffer of that size.
property_settings = settings(deadline=None)


@property_settings
@given(plaintext=property_plaintexts)
def test_blob_round_trip_any_plaintext(plaintext: bytes) -> None:
    blob = encrypt_blob(plaintext, chunk_size=PROPERTY_CHUNK_SIZE)

    restored = decrypt_blob(blob, len(plaintext))

    assert restored == plaintext


@property_settings
@given(data=st.data())
def test_decryptor_rejects_any_flipped_bit(data: st.DataObject) -> None:
    plaintext = data.draw(property_plaintexts, label="plaintext")
    blob = encrypt_blob(plaintext, chunk_size=PROPERTY_CHUNK_SIZE)
    # The bit may fall in the header as well. The header is not encrypted, but a
    # reader takes the chunk size from it and every chunk's associated data binds
    # the chunk size, so a flipped header bit must fail like any other.
    bit_index = data.draw(st.integers(0, len(blob) * 8 - 1), label="bit_index")
    tampered = flip_bit(blob, bit_index)

    with pytest.raises(DecryptionFailed):
        decrypt_blob(tampered, len(plaintext))


# Unfinished chunks of resumable uploads -----------------------------------------------------


def test_tail_round_trip() -> None:
    sealed = seal_tail(KEY, TENANT, BLOB, 4100, b"the end so far")

    assert open_tail(KEY, TENANT, BLOB, 4100, sealed) == b"the end so far"


def test_tail_of_another_offset_fails() -> None:
    sealed = seal_tail(KEY, TENANT, BLOB, 4100, b"the end so far")

    with pytest.raises(DecryptionFailed):
        open_tail(KEY, TENANT, BLOB, 4101, sealed)


def test_tail_of_another_blob_fails() -> None:
    sealed = seal_tail(KEY, TENANT, BLOB, 4100, b"the end so far")

    with pytest.raises(DecryptionFailed):
        open_tail(KEY, TENANT, uuid.uuid4(), 4100, sealed)


def test_tail_never_decrypts_as_chunk() -> None:
    plaintext = b"t" * 100
    sealed = seal_tail(KEY, TENANT, BLOB, 4096 + 100, plaintext)
    decryptor = ChunkDecryptor(KEY, TENANT, BLOB, CHUNK_SIZE, CHUNK_SIZE + 100)

    with pytest.raises(DecryptionFailed):
        decryptor.decrypt(1, sealed)


def test_encryptor_starts_at_given_index() -> None:
    data = bytes(range(256)) * (2 * CHUNK_SIZE // 256) + b"end"
    first = ChunkEncryptor(KEY, TENANT, BLOB, CHUNK_SIZE)
    later = ChunkEncryptor(KEY, TENANT, BLOB, CHUNK_SIZE, first_index=1)
    stored = bytes(first.encrypt(data[:CHUNK_SIZE], last=False))
    stored += bytes(later.encrypt(data[CHUNK_SIZE : 2 * CHUNK_SIZE], last=False))
    stored += bytes(later.encrypt(data[2 * CHUNK_SIZE :], last=True))
    decryptor = ChunkDecryptor(KEY, TENANT, BLOB, CHUNK_SIZE, len(data))

    plaintext = b"".join(
        decryptor.decrypt(
            index,
            stored[chunk_offset(index, CHUNK_SIZE) - HEADER_BYTES :][: decryptor.stored_length(index)],
        )
        for index in range(3)
    )

    assert plaintext == data
