"""Copies of files and restored versions: the content is decrypted and encrypted again into a new blob.

Two files never share a blob, so purging one can never delete the other's
content, and the copy counts against the quota like any upload.
"""

from __future__ import annotations

import uuid

from strongroom.drive.content import read_range
from strongroom.drive.files import Names, Preconditions
from strongroom.drive.models import NodeRow, VersionRow
from strongroom.drive.transfers import (
    Download,
    begin_upload,
    commit_upload,
    open_download,
    open_version_download,
)
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo


def copy_file(
    runtime: Runtime,
    tenant: TenantInfo,
    owner_id: uuid.UUID,
    source: Names,
    destination: Names,
    user_id: uuid.UUID | None,
) -> tuple[NodeRow, VersionRow]:
    """Store the content of the file at `source` as a new version of the file at `destination`.

    Both paths are in the drive of `owner_id`. Missing folders above the
    destination are created. Raises QuotaExceeded
    before any byte is written when the copy does not fit.
    """
    download = open_download(runtime, tenant, owner_id, source)
    return _write_copy(runtime, tenant, owner_id, download, destination, user_id)


def restore_version(
    runtime: Runtime,
    tenant: TenantInfo,
    owner_id: uuid.UUID,
    names: Names,
    number: int,
    user_id: uuid.UUID | None,
) -> tuple[NodeRow, VersionRow]:
    """Make the content of version `number` the file's newest version.

    The versions after it stay, so a restore can itself be undone. The
    restored content counts against the quota like an upload, and older
    versions beyond what the tenant keeps are pruned as after any upload.
    """
    download = open_version_download(runtime, tenant, owner_id, names, number)
    return _write_copy(runtime, tenant, owner_id, download, names, user_id)


def _write_copy(
    runtime: Runtime,
    tenant: TenantInfo,
    owner_id: uuid.UUID,
    download: Download,
    destination: Names,
    user_id: uuid.UUID | None,
) -> tuple[NodeRow, VersionRow]:
    size = download.blob.size
    upload = begin_upload(runtime, tenant, owner_id, destination, Preconditions(), size)
    try:
        if size:
            for piece in read_range(runtime.blobs, download.blob, download.tenant_key, 0, size - 1):
                upload.feed(piece)
    except BaseException:
        upload.abort()
        raise
    return commit_upload(runtime, tenant, owner_id, destination, upload, user_id, Preconditions())
