"""Re-wrapping blob keys under a new tenant key version, without touching blob contents."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select

from strongroom.drive.content import unwrap_blob_key
from strongroom.drive.models import BlobRow
from strongroom.storage import crypto
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.isolation import TenantStores
from strongroom.tenancy.keys import Keyring

BATCH_SIZE = 500


def count_blobs_to_rewrap(stores: TenantStores, tenant: TenantInfo, version: int) -> int:
    with stores.session(tenant) as session:
        return session.scalar(
            select(func.count()).select_from(BlobRow).where(BlobRow.key_version != version)
        ) or 0


def rewrap_blob_keys(
    stores: TenantStores,
    keyring: Keyring,
    tenant: TenantInfo,
    version: int,
    progress: Callable[[int], None] = lambda _done: None,
) -> int:
    """Wrap every blob key of the tenant with key `version`; return how many were re-wrapped.

    Works in batches, each its own transaction. A run that stops halfway leaves
    every blob readable (each row names the version that wraps it) and the next
    run carries on with the rows still on older versions.
    """
    new_key = keyring.version(tenant.id, version)
    done = 0
    while True:
        with stores.session(tenant, write=True) as session:
            batch = list(
                session.scalars(
                    select(BlobRow).where(BlobRow.key_version != version).limit(BATCH_SIZE)
                )
            )
            for blob in batch:
                old_key = keyring.version(tenant.id, blob.key_version)
                blob_key = unwrap_blob_key(blob, old_key)
                blob.wrapped_key = crypto.wrap_key(
                    new_key.key, blob_key, crypto.blob_key_context(tenant.id, blob.id, version)
                )
                blob.key_version = version
        if not batch:
            return done
        done += len(batch)
        progress(len(batch))
