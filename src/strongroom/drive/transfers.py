"""Uploads and downloads: the steps that span the tenant's store, its keys and the blob store.

An upload runs in three steps, so that no database transaction stays open
while bytes arrive. First `begin_upload` checks the path, the preconditions
and the quota, and opens an encrypted blob. Then the caller feeds it. Last,
`commit_upload` publishes the blob and records the version in one
transaction, retried when a concurrent upload to the same path won a race.
A failure after the blob is written deletes the blob again.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError as DatabaseIntegrityError
from sqlalchemy.exc import OperationalError

from strongroom.base.errors import BlockedFileType, Conflict, NotFound, PayloadTooLarge
from strongroom.base.logging import get_logger
from strongroom.drive import files, trash
from strongroom.drive.content import BlobUpload, blob_key
from strongroom.drive.files import Names, Preconditions
from strongroom.drive.models import FILE, BlobRow, NodeRow, VersionRow
from strongroom.drive.paths import join_path
from strongroom.runtime import Runtime
from strongroom.storage.db import TenantSession
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.keys import TenantKey
from strongroom.tenancy.models import utcnow
from strongroom.tenancy.modules import VERSIONING
from strongroom.tenancy.usage import (
    check_room,
    get_usage,
    quota_exceeded,
    release_bytes,
    reserve_bytes,
)

log = get_logger(__name__)

COMMIT_ATTEMPTS = 3


def check_upload(
    runtime: Runtime,
    tenant: TenantInfo,
    owner_id: uuid.UUID,
    names: Names,
    preconditions: Preconditions,
    declared_size: int | None,
    base_id: uuid.UUID | None = None,
) -> int:
    """Raise unless a file of `declared_size` bytes may be written at the path; return the bytes used.

    The name is checked against the blocked file types, and the size, when
    known, against the maximum file size and the quota as it is now, which
    is an early check: the version's transaction reserves the bytes.
    `base_id` is the shared node that the path starts from, as in
    `strongroom.drive.files`; a shared file is written with no names.
    """
    if names:
        check_file_allowed(tenant, names[-1])
    max_size = tenant.max_file_size
    if declared_size is not None and max_size is not None and declared_size > max_size:
        raise file_too_large(tenant, declared_size, declared=True)
    with runtime.stores.session(tenant) as session:
        existing = files.get_node(session, owner_id, names, base_id)
        path = join_path(names) or "the shared item"
        if existing is not None and existing.kind != FILE:
            raise Conflict(f"{path!r} is a folder; choose another name for the file")
        files.check_preconditions(existing, preconditions, path)
        if declared_size is not None:
            check_room(session, tenant, declared_size)
        return get_usage(session)


def begin_upload(
    runtime: Runtime,
    tenant: TenantInfo,
    owner_id: uuid.UUID,
    names: Names,
    preconditions: Preconditions,
    declared_size: int | None,
    base_id: uuid.UUID | None = None,
) -> BlobUpload:
    """Check that a file may be written at the path of the user's drive, then open its blob.

    `declared_size` (the request's Content-Length) is checked against the
    maximum file size and the quota before any byte is stored. Without it, the
    upload is cut off as soon as it passes either.
    """
    used = check_upload(runtime, tenant, owner_id, names, preconditions, declared_size, base_id)
    max_size = tenant.max_file_size
    room = None if tenant.quota_bytes is None else max(tenant.quota_bytes - used, 0)
    size_limit = min((limit for limit in (room, max_size) if limit is not None), default=None)

    def limit_error(size: int) -> Exception:
        if max_size is not None and size > max_size:
            return file_too_large(tenant, size, declared=False)
        return quota_exceeded(tenant, used, size)

    tenant_key = runtime.keyring.current(tenant.id)
    return BlobUpload(
        runtime.blobs,
        tenant_key,
        runtime.settings.chunk_size,
        size_limit=size_limit,
        limit_error=limit_error,
    )


def check_file_allowed(tenant: TenantInfo, name: str) -> None:
    """Raise BlockedFileType (415) if the tenant's settings block the file name's ending."""
    ending = tenant.settings.blocked_extension_of(name)
    if ending is not None:
        raise BlockedFileType(
            f"files ending in .{ending} are blocked in tenant {tenant.slug!r}; rename the file, "
            f"or ask a tenant admin to remove {ending!r} from the blocked_extensions setting",
            extension=ending,
        )


def file_too_large(tenant: TenantInfo, size: int, declared: bool) -> PayloadTooLarge:
    limit = tenant.max_file_size
    if tenant.settings.max_file_size == limit:
        raise_it = "ask a tenant admin to raise the max_file_size setting"
    else:
        raise_it = "ask the operator for a plan with a larger maximum file size"
    what = f"the upload declares {size} bytes" if declared else f"the upload reached {size} bytes"
    return PayloadTooLarge(
        f"{what}, more than the maximum file size of {limit} bytes in tenant {tenant.slug!r}; "
        f"upload a smaller file, or {raise_it}",
        limit=limit,
    )


def commit_upload(
    runtime: Runtime,
    tenant: TenantInfo,
    owner_id: uuid.UUID,
    names: Names,
    upload: BlobUpload,
    user_id: uuid.UUID | None,
    preconditions: Preconditions,
    base_id: uuid.UUID | None = None,
) -> tuple[NodeRow, VersionRow]:
    """Publish the blob and make it the file's newest version; on any failure, delete the blob."""
    try:
        blob, sha256 = upload.finish()
    except BaseException:
        upload.abort()
        raise
    try:
        return record_version(
            runtime, tenant, owner_id, names, blob, sha256, user_id, preconditions, base_id
        )
    except BaseException:
        runtime.blobs.delete(blob_key(tenant.id, blob.id))
        raise


def versions_to_keep(tenant: TenantInfo) -> int | None:
    """Return how many versions of a file the tenant keeps, None for all of them."""
    if VERSIONING not in tenant.modules:
        return 1
    return tenant.settings.versions_kept or None


def record_version(
    runtime: Runtime,
    tenant: TenantInfo,
    owner_id: uuid.UUID,
    names: Names,
    blob: BlobRow,
    sha256: str,
    user_id: uuid.UUID | None,
    preconditions: Preconditions,
    base_id: uuid.UUID | None = None,
    in_same_transaction: Callable[[TenantSession], None] | None = None,
) -> tuple[NodeRow, VersionRow]:
    """Record a published blob as the newest version of the file at the path of the user's drive.

    Reserves the blob's bytes in the quota in the same transaction, and
    deletes the blobs of versions pruned beyond what the tenant keeps after
    commit. `in_same_transaction` runs last in the transaction, so its change
    commits with the version or not at all. The caller deletes the new blob
    when this raises.
    """
    node, version, pruned = _record_version(
        runtime, tenant, owner_id, names, blob, sha256, user_id, preconditions, base_id,
        in_same_transaction,
    )
    _delete_blobs(runtime, tenant, list(pruned.blob_ids))
    return node, version


def _record_version(
    runtime: Runtime,
    tenant: TenantInfo,
    owner_id: uuid.UUID,
    names: Names,
    blob: BlobRow,
    sha256: str,
    user_id: uuid.UUID | None,
    preconditions: Preconditions,
    base_id: uuid.UUID | None,
    in_same_transaction: Callable[[TenantSession], None] | None = None,
) -> tuple[NodeRow, VersionRow, files.PrunedVersions]:
    """Record the new version and prune the old ones beyond what the tenant keeps.

    Returns the file, its new version and the pruned versions, whose blobs
    the caller deletes after commit.
    """
    keep = versions_to_keep(tenant)
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            with runtime.stores.session(tenant, write=True) as session:
                reserve_bytes(session, tenant, blob.size)
                row = _copy_blob_row(blob)
                node, version = files.add_version(
                    session, owner_id, names, row, sha256, user_id, preconditions, base_id
                )
                pruned = files.PrunedVersions()
                if keep is not None:
                    pruned = files.prune_versions(session, node, keep)
                    release_bytes(session, pruned.bytes)
                if in_same_transaction is not None:
                    in_same_transaction(session)
                return node, version, pruned
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


def open_download(
    runtime: Runtime,
    tenant: TenantInfo,
    owner_id: uuid.UUID,
    names: Names,
    base_id: uuid.UUID | None = None,
) -> Download:
    with runtime.stores.session(tenant) as session:
        node = files.access_node(session, owner_id, names, FILE, base_id)
        version, blob = files.current_content(session, node)
    tenant_key = runtime.keyring.version(tenant.id, blob.key_version)
    return Download(node, version, blob, tenant_key, join_path(names))


def open_version_download(
    runtime: Runtime, tenant: TenantInfo, owner_id: uuid.UUID, names: Names, number: int
) -> Download:
    """Open version `number` of the file at the path of the user's drive, current or earlier."""
    with runtime.stores.session(tenant) as session:
        node = files.access_node(session, owner_id, names, FILE)
        version, blob = files.version_content(session, node, number)
    tenant_key = runtime.keyring.version(tenant.id, blob.key_version)
    return Download(node, version, blob, tenant_key, join_path(names))


def purge(
    runtime: Runtime, tenant: TenantInfo, owner_id: uuid.UUID, node_id: uuid.UUID
) -> trash.Purged:
    """Delete an item of the user's trash for good: rows first, then blobs, then the usage they held."""
    with runtime.stores.session(tenant, write=True) as session:
        purged = trash.purge_node(session, owner_id, node_id)
        release_bytes(session, purged.bytes)
    _delete_blobs(runtime, tenant, purged.blob_ids)
    return purged


def empty_trash(runtime: Runtime, tenant: TenantInfo, owner_id: uuid.UUID) -> trash.Purged:
    """Purge everything in the trash of the user's drive."""
    total = trash.Purged(nodes=0, bytes=0, blob_ids=[])
    with runtime.stores.session(tenant) as session:
        trashed = [node.id for node in trash.list_trash(session, owner_id)]
    for node_id in trashed:
        try:
            purged = purge(runtime, tenant, owner_id, node_id)
        except NotFound:
            continue  # already purged with a trashed folder above it
        total.nodes += purged.nodes
        total.bytes += purged.bytes
    return total


def expire_trash(
    runtime: Runtime, tenant: TenantInfo, now: dt.datetime | None = None
) -> trash.Purged:
    """Purge what has been in the trash longer than the tenant's trash_retention_days setting.

    A retention of 0 keeps the trash until someone empties it. An item is
    purged at the first run after its retention ends, so the caller (a
    periodic job for every tenant) decides how late that can be.
    """
    total = trash.Purged(nodes=0, bytes=0, blob_ids=[])
    days = tenant.settings.trash_retention_days
    if days == 0:
        return total
    cutoff = (now or utcnow()) - dt.timedelta(days=days)
    with runtime.stores.session(tenant) as session:
        expired = [(node.owner_id, node.id) for node in trash.list_expired(session, cutoff)]
    for owner_id, node_id in expired:
        try:
            purged = purge(runtime, tenant, owner_id, node_id)
        except NotFound:
            continue  # purged already, with a trashed folder above it or by a user
        total.nodes += purged.nodes
        total.bytes += purged.bytes
    if total.nodes:
        log.info("trash_expired", items=total.nodes, bytes=total.bytes, retention_days=days)
    return total


def _delete_blobs(runtime: Runtime, tenant: TenantInfo, blob_ids: list[uuid.UUID]) -> None:
    for blob_id in blob_ids:
        try:
            runtime.blobs.delete(blob_key(tenant.id, blob_id))
        except OSError as exc:
            # The rows are gone already; `strongroom check --repair` removes the orphan later.
            log.warning("blob_delete_failed", blob_id=str(blob_id), error=str(exc))
