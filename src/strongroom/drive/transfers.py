"""Uploads and downloads: the steps that span the tenant's store, its keys and the blob store.

An upload runs in three steps, so that no database transaction stays open
while bytes arrive. First `begin_upload` checks the path, the preconditions
and the quota, and opens an encrypted blob. Then the caller feeds it. Last,
`commit_upload` publishes the blob and records the version in one
transaction, retried when a concurrent upload to the same path won a race.
A failure after the blob is written deletes the blob again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError as DatabaseIntegrityError
from sqlalchemy.exc import OperationalError

from strongroom.base.errors import Conflict, NotFound
from strongroom.base.logging import get_logger
from strongroom.drive import files, trash
from strongroom.drive.content import BlobUpload, blob_key
from strongroom.drive.files import Names, Preconditions
from strongroom.drive.models import FILE, BlobRow, NodeRow, VersionRow
from strongroom.drive.paths import join_path
from strongroom.identity.tokens import Principal
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.keys import TenantKey
from strongroom.tenancy.usage import (
    check_room,
    get_usage,
    quota_exceeded,
    release_bytes,
    reserve_bytes,
)

log = get_logger(__name__)

COMMIT_ATTEMPTS = 3


def begin_upload(
    runtime: Runtime,
    tenant: TenantInfo,
    names: Names,
    preconditions: Preconditions,
    declared_size: int | None,
) -> BlobUpload:
    """Check that a file may be written at the path, then open its blob.

    `declared_size` (the request's Content-Length) is checked against the
    quota before any byte is stored. Without it, the upload is cut off as
    soon as it passes the room left.
    """
    with runtime.stores.session(tenant) as session:
        existing = files.get_node(session, names)
        path = join_path(names)
        if existing is not None and existing.kind != FILE:
            raise Conflict(f"{path!r} is a folder; choose another name for the file")
        files.check_preconditions(existing, preconditions, path)
        if declared_size is not None:
            check_room(session, tenant, declared_size)
        used = get_usage(session)

    room = None if tenant.quota_bytes is None else max(tenant.quota_bytes - used, 0)
    tenant_key = runtime.keyring.current(tenant.id)
    return BlobUpload(
        runtime.blobs,
        tenant_key,
        runtime.settings.chunk_size,
        size_limit=room,
        limit_error=lambda size: quota_exceeded(tenant, used, size),
    )


def commit_upload(
    runtime: Runtime,
    tenant: TenantInfo,
    names: Names,
    upload: BlobUpload,
    user_id: uuid.UUID | None,
    preconditions: Preconditions,
) -> tuple[NodeRow, VersionRow]:
    """Publish the blob and make it the file's newest version; on any failure, delete the blob."""
    try:
        blob, sha256 = upload.finish()
    except BaseException:
        upload.abort()
        raise
    try:
        return _record_version(runtime, tenant, names, blob, sha256, user_id, preconditions)
    except BaseException:
        runtime.blobs.delete(blob_key(tenant.id, blob.id))
        raise


def _record_version(
    runtime: Runtime,
    tenant: TenantInfo,
    names: Names,
    blob: BlobRow,
    sha256: str,
    user_id: uuid.UUID | None,
    preconditions: Preconditions,
) -> tuple[NodeRow, VersionRow]:
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            with runtime.stores.session(tenant, write=True) as session:
                reserve_bytes(session, tenant, blob.size)
                row = _copy_blob_row(blob)
                return files.add_version(session, names, row, sha256, user_id, preconditions)
        except (DatabaseIntegrityError, OperationalError) as exc:
            # Two uploads created the same new file, or PostgreSQL aborted one of two
            # conflicting transactions. Start over, so the next try reads the winner's row.
            log.info("upload_commit_retry", attempt=attempt, error=type(exc).__name__)
            if attempt == COMMIT_ATTEMPTS:
                raise Conflict(
                    f"{join_path(names)!r} is being written by other requests at the same "
                    "time; retry the upload"
                ) from exc
    raise AssertionError("unreachable")


def _copy_blob_row(blob: BlobRow) -> BlobRow:
    """Copy the row for a new attempt, because a row added to a rolled-back session cannot be added again."""
    return BlobRow(
        tenant_id=blob.tenant_id,
        id=blob.id,
        size=blob.size,
        stored_size=blob.stored_size,
        chunk_size=blob.chunk_size,
        key_version=blob.key_version,
        wrapped_key=blob.wrapped_key,
    )


@dataclass(frozen=True)
class Download:
    node: NodeRow
    version: VersionRow
    blob: BlobRow
    tenant_key: TenantKey
    path: str

    @property
    def etag(self) -> str:
        return f'"{self.version.id.hex}"'


def open_download(runtime: Runtime, tenant: TenantInfo, names: Names) -> Download:
    with runtime.stores.session(tenant) as session:
        node = files.access_node(session, names, FILE)
        version, blob = files.current_content(session, node)
    tenant_key = runtime.keyring.version(tenant.id, blob.key_version)
    return Download(node, version, blob, tenant_key, join_path(names))


def purge(
    runtime: Runtime, tenant: TenantInfo, node_id: uuid.UUID, actor: Principal | None
) -> trash.Purged:
    """Delete a trashed item for good: rows first, then blobs, then the usage they held.

    `actor` None is the trash expiry job, which may purge any item.
    """
    with runtime.stores.session(tenant, write=True) as session:
        purged = trash.purge_node(session, node_id, actor)
        release_bytes(session, purged.bytes)
    _delete_blobs(runtime, tenant, purged.blob_ids)
    return purged


def empty_trash(runtime: Runtime, tenant: TenantInfo, actor: Principal) -> trash.Purged:
    """Purge everything in the trash for an admin; for a member, what the member put there."""
    total = trash.Purged(nodes=0, bytes=0, blob_ids=[])
    with runtime.stores.session(tenant) as session:
        trashed = [
            node.id
            for node in trash.list_trash(session)
            if actor.is_admin or node.deleted_by == actor.user_id
        ]
    for node_id in trashed:
        try:
            purged = purge(runtime, tenant, node_id, actor)
        except NotFound:
            continue  # already purged with a trashed folder above it
        total.nodes += purged.nodes
        total.bytes += purged.bytes
    return total


def _delete_blobs(runtime: Runtime, tenant: TenantInfo, blob_ids: list[uuid.UUID]) -> None:
    for blob_id in blob_ids:
        try:
            runtime.blobs.delete(blob_key(tenant.id, blob_id))
        except OSError as exc:
            # The rows are gone already; `strongroom check --repair` removes the orphan later.
            log.warning("blob_delete_failed", blob_id=str(blob_id), error=str(exc))
