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

from strongroom.base.errors import Conflict, IntegrityError
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


def cut_to_offset(partial: PartialBlob, upload: UploadRow) -> None:
    """Make the chunks file contain exactly the finished chunks below the upload's offset.

    Chunks beyond them come from a request that stopped before it recorded
    its offset, and are cut off.
    """
    chunk_size = upload.chunk_size
    expected = crypto.chunk_offset(upload.upload_offset // chunk_size, chunk_size)
    if partial.size == 0 and upload.upload_offset < chunk_size:
        partial.append(crypto.encode_header(chunk_size))
    if partial.size > expected:
        partial.truncate(expected)
    elif partial.size < expected:
        raise IntegrityError(
            f"upload {upload.id} has {partial.size} stored bytes where its offset needs "
            f"{expected}; terminate it with DELETE and upload the file again"
        )


def read_tail(runtime: Runtime, upload: UploadRow) -> bytes:
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
        raise IntegrityError(
            f"the stored end of upload {upload.id} is missing or damaged; terminate it with "
            "DELETE and upload the file again"
        ) from exc


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
