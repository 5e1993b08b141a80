"""Copies of files: the content is decrypted and encrypted again into a blob of the copy's own.

Two files never share a blob, so purging one can never delete the other's
content, and the copy counts against the quota like any upload.
"""

from __future__ import annotations

import uuid

from strongroom.drive.content import read_range
from strongroom.drive.files import Names, Preconditions
from strongroom.drive.models import NodeRow, VersionRow
from strongroom.drive.transfers import begin_upload, commit_upload, open_download
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
    size = download.blob.size
    upload = begin_upload(runtime, tenant, owner_id, destination, Preconditions(), size)
    try:
        if size:
            for piece in read_range(runtime.blobs, download.blob, download.tenant_key, 0, size - 1):
                upload.feed(piece)
    except BaseException:
        upload.abort()
        raise
    return commit_upload(
        runtime, tenant, owner_id, destination, upload, user_id, Preconditions()
    )
