"""Resumable uploads, the state behind the tus protocol: create, append, complete, terminate, expire.

The content goes into stored parts (drive/upload_parts.py): a chunks file
with every finished chunk in its final encrypted form, and a tail with the
unfinished chunk at the end. A PATCH holds the lock of the chunks file while
it appends to it, then writes its new tail, then records the new offset in
one conditional UPDATE, and only then deletes the previous tail. So after a
crash at any step, the row's offset names a tail that exists, and the chunks
file contains at least the chunks that offset needs. The next PATCH cuts off
the rest. The request that reaches the upload's length seals the last
chunk, links the chunks file to the blob's key, and records the file version
and the upload's completion in one transaction through
`transfers.record_version`. Until then the chunks file keeps its bytes and
its lock, so the next request after a crash takes them back (`_settle`).
docs/decisions/0013-resumable-upload-storage.md gives the reasons.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update

from strongroom.base.errors import (
    ChecksumMismatch,
    Conflict,
    Gone,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    ServerStorageFull,
)
from strongroom.base.logging import get_logger
from strongroom.drive import transfers, upload_parts
from strongroom.drive.content import blob_key, read_range
from strongroom.drive.files import Preconditions
from strongroom.drive.models import BlobRow, NodeRow, UploadRow, VersionRow
from strongroom.drive.paths import join_path, split_path
from strongroom.identity.tokens import Principal
from strongroom.runtime import Runtime
from strongroom.storage import crypto
from strongroom.storage.blobs import PartialBlob, PartialBlobBusy
from strongroom.storage.db import TenantSession
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.models import utcnow

log = get_logger(__name__)

CHECKSUM_ALGORITHMS: dict[str, Callable[[], Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "md5": lambda: hashlib.md5(usedforsecurity=False),
}


@dataclass(frozen=True)
class Checksum:
    """The Upload-Checksum of one request: an algorithm of CHECKSUM_ALGORITHMS and the digest."""

    algorithm: str
    digest: bytes


# Creation and look-ups ---------------------------------------------------------------


def create_upload(
    runtime: Runtime,
    tenant: TenantInfo,
    principal: Principal,
    path: str,
    length: int,
    metadata: str,
) -> UploadRow:
    """Create an upload of `length` bytes for the file at `path`, after the checks a PUT makes.

    An upload of 0 bytes is complete at once: the file version exists when
    this returns.
    """
    names = split_path(path)
    if not names:
        raise InvalidInput(
            "the `filename` of Upload-Metadata is empty; send the path of the file to write"
        )
    max_size = runtime.settings.tus_max_size
    if length > max_size:
        raise PayloadTooLarge(
            f"Upload-Length {length} is more than the {max_size} bytes an upload may have "
            "(Tus-Max-Size); split the file, or ask the operator to raise STRONGROOM_TUS_MAX_SIZE",
            limit=max_size,
        )
    transfers.check_upload(runtime, tenant, principal.user_id, names, Preconditions(), length)

    tenant_key = runtime.keyring.current(tenant.id)
    blob_id = uuid.uuid4()
    context = crypto.blob_key_context(tenant.id, blob_id, tenant_key.version)
    now = utcnow()
    upload = UploadRow(
        tenant_id=tenant.id,
        id=uuid.uuid4(),
        user_id=principal.user_id,
        path=join_path(names),
        upload_length=length,
        upload_offset=0,
        upload_metadata=metadata,
        blob_id=blob_id,
        chunk_size=runtime.settings.chunk_size,
        key_version=tenant_key.version,
        wrapped_key=crypto.wrap_key(tenant_key.key, crypto.generate_key(), context),
        created_at=now,
        expires_at=now + _expiry(runtime),
    )
    with runtime.stores.session(tenant, write=True) as session:
        session.add(upload)
    log.info("upload_created", upload_id=str(upload.id), length=length)

    if length == 0:
        append = begin_append(runtime, tenant, principal, upload.id, 0, None)
        append.finish(complete_body=True)
        return get_upload(runtime, tenant, principal, upload.id)
    return upload


def get_upload(
    runtime: Runtime, tenant: TenantInfo, principal: Principal, upload_id: uuid.UUID
) -> UploadRow:
    """Return the caller's own upload, or raise NotFound, or Gone once it has expired.

    Another user's upload, and another tenant's, are not found, exactly as an
    unknown id. The first request to an expired upload deletes its stored parts.
    """
    upload = _own_upload(runtime, tenant, principal, upload_id)
    if is_expired(upload):
        upload_parts.delete_parts(runtime, upload)
        raise Gone(
            f"upload {upload_id} expired at {_http_date(upload.expires_at)} and its data was "
            "deleted; create a new upload with POST /api/v1/uploads/"
        )
    return upload


def is_expired(upload: UploadRow, now: dt.datetime | None = None) -> bool:
    return _aware(upload.expires_at) <= (now or utcnow())


def _own_upload(
    runtime: Runtime, tenant: TenantInfo, principal: Principal, upload_id: uuid.UUID
) -> UploadRow:
    with runtime.stores.session(tenant) as session:
        upload = session.scalars(
            select(UploadRow).where(
                UploadRow.id == upload_id, UploadRow.user_id == principal.user_id
            )
        ).first()
    if upload is None:
        raise NotFound(f"no upload has the id {upload_id}")
    return upload


# Termination and expiry --------------------------------------------------------------


def terminate_upload(
    runtime: Runtime, tenant: TenantInfo, principal: Principal, upload_id: uuid.UUID
) -> None:
    """Delete the upload and its stored parts. The file of a completed upload stays.

    Raises Conflict while a request is writing to the upload, because its
    parts cannot be deleted under it.
    """
    upload = _own_upload(runtime, tenant, principal, upload_id)
    partial = None
    if upload.completed_at is None:
        partial = upload_parts.lock(runtime, upload)
    try:
        with runtime.stores.session(tenant, write=True) as session:
            session.execute(delete(UploadRow).where(UploadRow.id == upload.id))
        upload_parts.delete_parts(runtime, upload)
    finally:
        if partial is not None:
            partial.close()
    log.info("upload_terminated", upload_id=str(upload.id), offset=upload.upload_offset)


def sweep_expired_uploads(
    runtime: Runtime, tenant: TenantInfo, now: dt.datetime | None = None
) -> list[uuid.UUID]:
    """Delete every expired upload of the tenant with its stored parts; return their ids."""
    now = now or utcnow()
    with runtime.stores.session(tenant) as session:
        expired = list(session.scalars(select(UploadRow).where(UploadRow.expires_at <= now)))
    swept = []
    for upload in expired:
        with runtime.stores.session(tenant, write=True) as session:
            # A request may have moved the expiry since the rows were read.
            deleted = session.execute(
                delete(UploadRow).where(UploadRow.id == upload.id, UploadRow.expires_at <= now)
            ).rowcount
        if deleted:
            upload_parts.delete_parts(runtime, upload)
            swept.append(upload.id)
    if swept:
        log.info("uploads_expired", tenant=tenant.slug, count=len(swept))
    return swept


def list_live_upload_keys(runtime: Runtime, tenant: TenantInfo) -> set[str]:
    """Return the keys of every stored part that an upload row of the tenant names."""
    with runtime.stores.session(tenant) as session:
        uploads = list(session.scalars(select(UploadRow).where(UploadRow.completed_at.is_(None))))
    return {key for upload in uploads for key in upload_parts.stored_keys(upload)}


# Appending ---------------------------------------------------------------------------


def begin_append(
    runtime: Runtime,
    tenant: TenantInfo,
    principal: Principal,
    upload_id: uuid.UUID,
    offset: int,
    checksum: Checksum | None,
) -> UploadAppend:
    """Lock the upload for one request that sends bytes from `offset` on, and ready its state.

    Raises NotFound or Gone as `get_upload` does, and Conflict when `offset`
    is not the upload's offset or another request is writing to it.
    """
    upload = get_upload(runtime, tenant, principal, upload_id)
    if upload.completed_at is not None:
        _check_offset(upload, offset)
        return UploadAppend(runtime, tenant, principal, upload, None, b"", checksum)

    partial = upload_parts.lock(runtime, upload)
    try:
        # Read again under the lock: the request that held it may have moved the offset,
        # or completed the upload, and then the lock made a new, empty chunks file.
        upload = _own_upload(runtime, tenant, principal, upload_id)
        tail = b""
        if upload.completed_at is None:
            settled = _settle(runtime, tenant, partial, upload)
            if settled.lost_from is not None:
                raise Conflict(
                    f"upload {upload.id} lost its bytes from offset {upload.upload_offset} to "
                    f"{settled.lost_from} in a crash and now has {upload.upload_offset} bytes; "
                    f"send the file from offset {upload.upload_offset}",
                    offset=upload.upload_offset,
                )
            tail = settled.tail
        if upload.completed_at is not None:
            partial.close()
            runtime.blobs.delete(upload_parts.chunks_key(tenant.id, upload.id))
            _check_offset(upload, offset)
            return UploadAppend(runtime, tenant, principal, upload, None, b"", checksum)
        _check_offset(upload, offset)
    except BaseException:
        partial.close()
        raise
    return UploadAppend(runtime, tenant, principal, upload, partial, tail, checksum)


# Recovery after a crash ------------------------------------------------------------------


@dataclass(frozen=True)
class Settled:
    """The state of an upload once `_settle` has made its parts agree with its row."""

    tail: bytes = b""
    # The offset the row claimed before `_settle` moved it back to the stored bytes.
    lost_from: int | None = None


def _settle(
    runtime: Runtime, tenant: TenantInfo, partial: PartialBlob, upload: UploadRow
) -> Settled:
    """Make the locked parts of an unfinished upload and its row agree again after a crash.

    A crash while the upload completed leaves its blob under the blob's key
    without a row: the chunks file is taken back, or the blob is adopted when
    a release before the amendment of 0013 moved the bytes there. A version
    already recorded completes the upload (`upload.completed_at` is set).
    Stored bytes short of the offset move the row's offset back to them, and
    `lost_from` keeps the offset the row claimed before. Without a crash, this only cuts off unrecorded chunks.
    """
    published = blob_key(upload.tenant_id, upload.blob_id)
    if runtime.blobs.exists(published):
        if _blob_recorded(runtime, tenant, upload.blob_id):
            _complete_recorded(runtime, tenant, upload)
            return Settled()
        if partial.size < upload_parts.needed_size(upload):
            try:
                partial.adopt(published)
            except PartialBlobBusy:
                raise Conflict(
                    f"another request is completing upload {upload.id}; wait until it ends, "
                    "then ask for the offset with HEAD"
                ) from None
            log.warning("upload_blob_adopted", upload_id=str(upload.id))
        else:
            partial.unpublish(published)
            log.info("upload_blob_unpublished", upload_id=str(upload.id))
    chunk_size = upload.chunk_size
    claimed = upload.upload_offset
    reached = upload_parts.cut_to_offset(partial, upload)
    tail = None
    if reached == claimed - claimed % chunk_size:
        tail = upload_parts.read_tail(runtime, upload)
    if tail is not None:
        return Settled(tail=tail)
    _reset_offset(runtime, tenant, upload, reached)
    log.warning("upload_offset_reset", upload_id=str(upload.id), claimed=claimed, offset=reached)
    return Settled(lost_from=claimed)


def _blob_recorded(runtime: Runtime, tenant: TenantInfo, blob_id: uuid.UUID) -> bool:
    with runtime.stores.session(tenant) as session:
        return session.scalars(select(BlobRow.id).where(BlobRow.id == blob_id)).first() is not None


def _complete_recorded(runtime: Runtime, tenant: TenantInfo, upload: UploadRow) -> None:
    """Mark complete an upload whose version was recorded before a crash kept it from saying so.

    Only a release before the amendment of 0013 recorded the two apart.
    """
    now = utcnow()
    leftovers = upload_parts.stored_keys(upload)[1:]
    with runtime.stores.session(tenant, write=True) as session:
        session.execute(
            update(UploadRow)
            .where(UploadRow.id == upload.id, UploadRow.upload_offset == upload.upload_offset)
            .values(upload_offset=upload.upload_length, completed_at=now)
        )
    for key in leftovers:
        runtime.blobs.delete(key)
    upload.upload_offset = upload.upload_length
    upload.completed_at = now
    log.warning("upload_completion_recovered", upload_id=str(upload.id))


def _reset_offset(runtime: Runtime, tenant: TenantInfo, upload: UploadRow, offset: int) -> None:
    """Move the row's offset back to what the stored parts hold, and drop the tail they lost."""
    leftovers = upload_parts.stored_keys(upload)[1:]
    with runtime.stores.session(tenant, write=True) as session:
        changed = session.execute(
            update(UploadRow)
            .where(UploadRow.id == upload.id, UploadRow.upload_offset == upload.upload_offset)
            .values(upload_offset=offset)
        ).rowcount
    if changed != 1:
        raise Gone(
            f"upload {upload.id} expired or was terminated while this request ran; "
            "create a new upload with POST /api/v1/uploads/"
        )
    for key in leftovers:
        runtime.blobs.delete(key)
    upload.upload_offset = offset


def inspect_upload(
    runtime: Runtime, tenant: TenantInfo, upload_id: uuid.UUID, repair: bool
) -> str | None:
    """Describe what a crash left wrong in an unfinished upload, or return None when it is sound.

    For `strongroom check`. With `repair`, settle it as the next request
    would. An upload that a request has locked now is left to that request.
    """
    with runtime.stores.session(tenant) as session:
        upload = session.scalars(select(UploadRow).where(UploadRow.id == upload_id)).first()
    if upload is None or upload.completed_at is not None:
        return None
    try:
        partial = upload_parts.lock(runtime, upload)
    except Conflict:
        return None
    try:
        with runtime.stores.session(tenant) as session:
            upload = session.scalars(select(UploadRow).where(UploadRow.id == upload_id)).first()
        if upload is None or upload.completed_at is not None:
            return None
        problem = _problem(runtime, tenant, partial, upload)
        if problem is not None and repair:
            _settle(runtime, tenant, partial, upload)
            if upload.completed_at is not None:
                runtime.blobs.delete(upload_parts.chunks_key(tenant.id, upload.id))
        return problem
    finally:
        partial.close()


def _problem(
    runtime: Runtime, tenant: TenantInfo, partial: PartialBlob, upload: UploadRow
) -> str | None:
    offset, needed = upload.upload_offset, upload_parts.needed_size(upload)
    published = blob_key(upload.tenant_id, upload.blob_id)
    if runtime.blobs.exists(published):
        if _blob_recorded(runtime, tenant, upload.blob_id):
            return "has its version recorded but is not marked complete"
        if partial.size < needed:
            return f"has its bytes in the unrecorded blob {published}, for the upload to adopt"
        return f"left the blob {published} published but not recorded"
    if partial.size < needed:
        return f"has {partial.size} stored bytes where its offset {offset} needs {needed}"
    if offset % upload.chunk_size and not runtime.blobs.exists(
        upload_parts.tail_key(upload.tenant_id, upload.id, offset)
    ):
        return f"has lost the stored end of its offset {offset}"
    return None


def _check_offset(upload: UploadRow, offset: int) -> None:
    if offset != upload.upload_offset:
        raise Conflict(
            f"Upload-Offset {offset} does not match upload {upload.id}, which has "
            f"{upload.upload_offset} bytes; ask for the offset with HEAD and send from there",
            offset=upload.upload_offset,
        )


class UploadAppend:
    """The bytes of one request on their way into an upload. Feed them, then `finish` or `discard`.

    Finished chunks are encrypted and appended as soon as they fill, so
    memory stays at one chunk. The unfinished chunk at the end stays in
    memory until `finish` stores it as the tail, or seals it as the last chunk.
    """

    def __init__(
        self,
        runtime: Runtime,
        tenant: TenantInfo,
        principal: Principal,
        upload: UploadRow,
        partial: PartialBlob | None,
        tail: bytes,
        checksum: Checksum | None,
    ) -> None:
        self.upload = upload
        self.received = 0
        # The file and version this request completed, once `finish` has recorded them.
        self.completed: tuple[NodeRow, VersionRow] | None = None
        self._start_offset = upload.upload_offset
        self._runtime = runtime
        self._tenant = tenant
        self._principal = principal
        self._partial = partial
        self._start_size = partial.size if partial is not None else 0
        self._checksum = checksum
        self._hash = CHECKSUM_ALGORITHMS[checksum.algorithm]() if checksum else None
        self._room = upload.upload_length - upload.upload_offset
        chunk_size = upload.chunk_size
        self._last_index = crypto.chunk_count(upload.upload_length, chunk_size) - 1
        self._index = upload.upload_offset // chunk_size
        self._buffer = bytearray(chunk_size)
        self._buffer[: len(tail)] = tail
        self._filled = len(tail)
        # A completed upload takes no bytes, so it needs no key.
        self._key = upload_parts.blob_key_of(runtime, upload) if partial is not None else b""
        self._encryptor: crypto.ChunkEncryptor | None = None
        if partial is not None:
            self._encryptor = crypto.ChunkEncryptor(
                self._key, upload.tenant_id, upload.blob_id, chunk_size, self._index
            )

    @property
    def offset(self) -> int:
        return self._start_offset + self.received

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        if self.received + len(view) > self._room:
            raise PayloadTooLarge(
                f"the request sends more than the {self._room} bytes left of upload "
                f"{self.upload.id} (Upload-Length {self.upload.upload_length}); send only the rest",
                limit=self._room,
            )
        if self._hash is not None:
            self._hash.update(view)
        self.received += len(view)
        chunk_size = self.upload.chunk_size
        while view:
            copied = min(chunk_size - self._filled, len(view))
            self._buffer[self._filled : self._filled + copied] = view[:copied]
            self._filled += copied
            view = view[copied:]
            # The last chunk is sealed in `finish`, with its last flag.
            if self._filled == chunk_size and self._index < self._last_index:
                self._seal(last=False)

    def finish(self, complete_body: bool) -> int:
        """Store what arrived and return the upload's new offset; release the lock.

        `complete_body` is False when the client went away mid-request. Its
        bytes are kept then, as the protocol recommends, unless the request carried
        a checksum that can no longer be verified. Raises ChecksumMismatch,
        with nothing stored, when the checksum does not match.
        """
        try:
            if self._checksum is not None and not complete_body:
                self._undo()
                return self._start_offset
            self._verify_checksum()
            if self.offset == self._length and self._partial is not None:
                self._complete()
            elif self.received:
                self._save()
            return self.offset
        except ServerStorageFull:
            # Nothing of this request was recorded. Cutting its bytes off frees their room
            # and leaves the upload at the offset it had before, which HEAD reports.
            self._undo()
            raise
        finally:
            self.close()

    def discard(self) -> None:
        """Drop everything this request sent and release the lock."""
        try:
            self._undo()
        finally:
            self.close()

    def close(self) -> None:
        if self._partial is not None:
            self._partial.close()

    @property
    def _length(self) -> int:
        return self.upload.upload_length

    def _seal(self, last: bool) -> None:
        assert self._partial is not None and self._encryptor is not None
        sealed = self._encryptor.encrypt(memoryview(self._buffer)[: self._filled], last=last)
        self._partial.append(sealed)
        self._index += 1
        self._filled = 0

    def _verify_checksum(self) -> None:
        if self._checksum is None or self._hash is None:
            return
        if self._hash.digest() != self._checksum.digest:
            self._undo()
            raise ChecksumMismatch(
                f"the {self._checksum.algorithm} checksum of the {self.received} bytes sent does "
                f"not match Upload-Checksum, so they were discarded; upload {self.upload.id} "
                f"stays at offset {self._start_offset}, from where to send them again",
                offset=self._start_offset,
            )

    def _undo(self) -> None:
        if self._partial is not None and self._partial.size != self._start_size:
            self._partial.truncate(self._start_size)

    def _save(self) -> None:
        """Record an offset short of the length: the chunks first, then the tail, then the row."""
        assert self._partial is not None
        upload, runtime = self.upload, self._runtime
        self._partial.sync()
        new_tail = None
        if self._filled:
            tail = bytes(self._buffer[: self._filled])
            new_tail = upload_parts.write_tail(runtime, upload, self._key, self.offset, tail)
        old_tails = upload_parts.stored_keys(upload)[1:]
        try:
            self._record_offset(self.offset)
        except BaseException:
            if new_tail is not None:
                runtime.blobs.delete(new_tail)
            raise
        for key in old_tails:
            runtime.blobs.delete(key)

    def _complete(self) -> None:
        """Seal the last chunk, publish the blob and record it as the file's newest version.

        On failure the chunks file moves back and is cut back, so the client
        may send the same bytes again once the cause (quota, a folder in the
        way) is gone.
        """
        assert self._partial is not None
        upload, runtime = self.upload, self._runtime
        self._seal(last=True)
        key = blob_key(upload.tenant_id, upload.blob_id)
        # The chunks file keeps its bytes and its lock until the version is recorded, so a
        # crash before then leaves them to the next request (`_settle`).
        stored_size = self._partial.publish(key)
        old_parts = upload_parts.stored_keys(upload)
        now = utcnow()
        try:
            blob = upload_parts.blob_row(upload, stored_size)
            sha256 = _sha256_of(runtime, blob)
            user_id = self._principal.user_id
            node, version = transfers.record_version(
                runtime, self._tenant, user_id, split_path(upload.path), blob, sha256, user_id,
                Preconditions(),
                in_same_transaction=lambda session: self._mark_complete(session, now),
            )
        except BaseException:
            self._partial.unpublish(key)
            self._undo()
            raise
        upload.upload_offset = upload.upload_length
        upload.expires_at = now + _expiry(runtime)
        upload.completed_at = now
        # The chunks file is a second name of the blob now, so this frees only the name.
        for stored in old_parts:
            runtime.blobs.delete(stored)
        self.completed = (node, version)
        log.info(
            "upload_completed",
            upload_id=str(upload.id),
            node_id=str(node.id),
            version=version.number,
            size=version.size,
        )

    def _record_offset(self, offset: int) -> None:
        """Record an offset short of the length in the row and in `self.upload`."""
        now = utcnow()
        with self._runtime.stores.session(self._tenant, write=True) as session:
            self._update_row(session, now, {"upload_offset": offset})
        self.upload.upload_offset = offset
        self.upload.expires_at = now + _expiry(self._runtime)

    def _mark_complete(self, session: TenantSession, now: dt.datetime) -> None:
        """Mark the upload complete in the transaction that records its version."""
        values = {"upload_offset": self.upload.upload_length, "completed_at": now}
        self._update_row(session, now, values)

    def _update_row(self, session: TenantSession, now: dt.datetime, values: dict[str, Any]) -> None:
        """Update the row from this request's start offset, unless the row has gone meanwhile."""
        upload = self.upload
        # The row may have been terminated or swept as expired meanwhile.
        changed = session.execute(
            update(UploadRow)
            .where(
                UploadRow.id == upload.id,
                UploadRow.upload_offset == self._start_offset,
                UploadRow.expires_at > now,
            )
            .values(expires_at=now + _expiry(self._runtime), **values)
        ).rowcount
        if changed != 1:
            raise Gone(
                f"upload {upload.id} expired or was terminated while this request ran; "
                "create a new upload with POST /api/v1/uploads/"
            )


def _sha256_of(runtime: Runtime, blob: BlobRow) -> str:
    """Hash the finished blob by decrypting it, which also proves that every chunk is sound.

    The hash of earlier requests' bytes cannot be carried over: they may
    have come to another process, or before a restart.
    """
    tenant_key = runtime.keyring.version(blob.tenant_id, blob.key_version)
    digest = hashlib.sha256()
    for piece in read_range(runtime.blobs, blob, tenant_key, 0, blob.size - 1):
        digest.update(piece)
    return digest.hexdigest()


# Times -------------------------------------------------------------------------------


def _expiry(runtime: Runtime) -> dt.timedelta:
    return dt.timedelta(seconds=runtime.settings.tus_expiry_seconds)


def _aware(moment: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes for timezone-aware columns; they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _http_date(moment: dt.datetime) -> str:
    return _aware(moment).strftime("%a, %d %b %Y %H:%M:%S GMT")


def http_expiry(upload: UploadRow) -> str:
    """Return the Upload-Expires value of an upload: an HTTP date (RFC 9110, section 5.6.7)."""
    return _http_date(upload.expires_at)
