"""The stored parts of unfinished resumable uploads: their keys, the tail, and cleaning up.

An upload stores its content encrypted, under the tenant's key prefix, in
two kinds of objects of the blob store:

- `uploads/{id}.chunks`, a partial blob: the blob header and every finished
  chunk, encrypted exactly as the finished blob `blob_id` will hold them.
- `uploads/{id}.tail-{offset}`, the unfinished chunk at the end, encrypted
  on its own (`crypto.seal_tail`) and named by the upload offset it ends at.

drive/resumable.py writes them in an order that a crash cannot break.
"""

from __future__ import annotations

import uuid

from strongroom.base.errors import Conflict
from strongroom.base.logging import get_logger
from strongroom.base.scoping import tenant_scoped_key
from strongroom.drive.content import unwrap_blob_key
from strongroom.drive.models import BlobRow, UploadRow
from strongroom.runtime import Runtime
from strongroom.storage import crypto
from strongroom.storage.blobs import BlobMissing, PartialBlob, PartialBlobBusy

log = get_logger(__name__)

NAMESPACE = "uploads"


def chunks_key(tenant_id: uuid.UUID, upload_id: uuid.UUID) -> str:
    return tenant_scoped_key(tenant_id, NAMESPACE, f"{upload_id.hex}.chunks")


def tail_key(tenant_id: uuid.UUID, upload_id: uuid.UUID, offset: int) -> str:
    return tenant_scoped_key(tenant_id, NAMESPACE, f"{upload_id.hex}.tail-{offset}")


def stored_keys(upload: UploadRow) -> list[str]:
    """Return the keys of the parts an unfinished upload has stored now."""
    if upload.completed_at is not None:
        return []
    keys = [chunks_key(upload.tenant_id, upload.id)]
    if upload.upload_offset % upload.chunk_size:
        keys.append(tail_key(upload.tenant_id, upload.id, upload.upload_offset))
    return keys


def uploads_prefix(tenant_id: uuid.UUID) -> str:
    return tenant_scoped_key(tenant_id, NAMESPACE)


def delete_parts(runtime: Runtime, upload: UploadRow) -> None:
    for key in stored_keys(upload):
        try:
            runtime.blobs.delete(key)
        except OSError as exc:
            # `strongroom check --repair` removes parts that no upload names.
            log.warning("upload_part_delete_failed", upload_id=str(upload.id), error=str(exc))


def lock(runtime: Runtime, upload: UploadRow) -> PartialBlob:
    """Open the upload's chunks file and lock it, or raise Conflict while another request has."""
    try:
        return runtime.blobs.open_partial(chunks_key(upload.tenant_id, upload.id))
    except PartialBlobBusy:
        raise Conflict(
            f"another request is writing to upload {upload.id}; wait until it ends, then ask "
            "for the offset with HEAD and carry on from there"
        ) from None


def cut_to_offset(partial: PartialBlob, upload: UploadRow) -> int:
    """Cut the chunks file to the finished chunks below the upload's offset; return where they end.

    Chunks beyond them come from a request that stopped before it recorded
    its offset, and are cut off. The return value is the upload offset the
    stored chunks reach: less than the row's offset rounded down to a chunk
    when chunks were lost, which `needed_size` lets a caller see beforehand.
    """
    chunk_size = upload.chunk_size
    if partial.size < crypto.HEADER_BYTES:
        partial.truncate(0)
        partial.append(crypto.encode_header(chunk_size))
    sealed_size = chunk_size + crypto.CHUNK_OVERHEAD
    stored_chunks = (partial.size - crypto.HEADER_BYTES) // sealed_size
    chunks = min(stored_chunks, upload.upload_offset // chunk_size)
    partial.truncate(crypto.chunk_offset(chunks, chunk_size))
    return chunks * chunk_size


def needed_size(upload: UploadRow) -> int:
    """Return the size the chunks file needs at least for the upload's offset."""
    if upload.upload_offset < upload.chunk_size:
        return 0  # the header alone, which the next request writes when it is missing
    return crypto.chunk_offset(upload.upload_offset // upload.chunk_size, upload.chunk_size)


def read_tail(runtime: Runtime, upload: UploadRow) -> bytes | None:
    """Return the unfinished chunk at the upload's offset, or None when it is missing or damaged."""
    if upload.upload_offset % upload.chunk_size == 0:
        return b""
    key = tail_key(upload.tenant_id, upload.id, upload.upload_offset)
    try:
        with runtime.blobs.reader(key) as reader:
            sealed = reader.read_at(0, reader.size)
        return crypto.open_tail(
            blob_key_of(runtime, upload), upload.tenant_id, upload.blob_id,
            upload.upload_offset, sealed,
        )
    except (BlobMissing, crypto.DecryptionFailed) as exc:
        log.warning("upload_tail_unreadable", upload_id=str(upload.id), error=type(exc).__name__)
        return None


def blob_key_of(runtime: Runtime, upload: UploadRow) -> bytes:
    tenant_key = runtime.keyring.version(upload.tenant_id, upload.key_version)
    return unwrap_blob_key(blob_row(upload, stored_size=0), tenant_key)


def blob_row(upload: UploadRow, stored_size: int) -> BlobRow:
    return BlobRow(
        tenant_id=upload.tenant_id,
        id=upload.blob_id,
        size=upload.upload_length,
        stored_size=stored_size,
        chunk_size=upload.chunk_size,
        key_version=upload.key_version,
        wrapped_key=upload.wrapped_key,
    )


def write_tail(runtime: Runtime, upload: UploadRow, key: bytes, offset: int, tail: bytes) -> str:
    """Store the unfinished chunk that ends the upload at `offset`, encrypted; return its key."""
    stored = tail_key(upload.tenant_id, upload.id, offset)
    sealed = crypto.seal_tail(key, upload.tenant_id, upload.blob_id, offset, tail)
    with runtime.blobs.writer(stored) as writer:
        writer.write(sealed)
        writer.commit()
    return stored
