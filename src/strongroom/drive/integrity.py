"""Consistency between the tenant stores and the blob store, for `strongroom check`.

Three kinds of damage are found. Orphan blobs are blobs that no row refers
to, left by a crash between publishing a blob and committing its version, or
between deleting rows and deleting the blob. Then come rows whose blob is
missing, and abandoned uploads. A usage counter that differs from the recount is
reported too. With `repair`, orphans and abandoned uploads are removed, rows
without content are deleted (a file falls back to its newest version that
still has content, or is removed), and the usage counter is recounted.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy import delete, select

from strongroom.base.logging import get_logger
from strongroom.drive.content import blob_key
from strongroom.drive.files import count_usage, create_root
from strongroom.drive.models import BlobRow, NodeRow, VersionRow
from strongroom.runtime import Runtime
from strongroom.storage.db import TenantSession
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.usage import get_usage, set_usage

log = get_logger(__name__)

# A blob is published a moment before its version row commits, so a younger file
# may belong to an upload still in flight and is not called an orphan.
DEFAULT_GRACE_SECONDS = 15 * 60


@dataclass
class TenantReport:
    slug: str
    orphan_blobs: list[str] = field(default_factory=list)
    missing_blobs: list[uuid.UUID] = field(default_factory=list)
    usage_recorded: int = 0
    usage_counted: int = 0
    missing_root: bool = False
    repaired: bool = False

    @property
    def usage_mismatch(self) -> bool:
        return self.usage_recorded != self.usage_counted

    @property
    def clean(self) -> bool:
        return not (
            self.orphan_blobs or self.missing_blobs or self.usage_mismatch or self.missing_root
        )


@dataclass
class Report:
    tenants: list[TenantReport] = field(default_factory=list)
    stale_uploads: list[str] = field(default_factory=list)
    unknown_tenant_blobs: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return (
            all(tenant.clean for tenant in self.tenants)
            and not self.stale_uploads
            and not self.unknown_tenant_blobs
        )


def check_all(runtime: Runtime, repair: bool, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> Report:
    report = Report()
    tenants = runtime.catalog.list_tenants()
    for tenant in tenants:
        report.tenants.append(check_tenant(runtime, tenant, repair, grace_seconds))

    known = {str(tenant.id) for tenant in tenants}
    for key in runtime.blobs.iter_keys("tenants"):
        parts = key.split("/")
        if len(parts) > 1 and parts[1] not in known:
            report.unknown_tenant_blobs.append(key)

    for upload in runtime.blobs.iter_stale_uploads(grace_seconds):
        report.stale_uploads.append(upload.name)
        if repair:
            runtime.blobs.remove_stale_upload(upload.name)
    return report


def check_tenant(
    runtime: Runtime, tenant: TenantInfo, repair: bool, grace_seconds: float
) -> TenantReport:
    report = TenantReport(slug=tenant.slug)
    with runtime.stores.session(tenant) as session:
        blob_ids = set(session.scalars(select(BlobRow.id)))
        report.usage_recorded = get_usage(session)
        report.usage_counted = count_usage(session)
        report.missing_root = session.scalar(select(NodeRow.id).where(NodeRow.parent_id.is_(None))) is None

    stored = _stored_blobs(runtime, tenant, grace_seconds)
    report.orphan_blobs = sorted(key for key, blob_id in stored.items() if blob_id not in blob_ids)
    present = set(stored.values())
    report.missing_blobs = sorted(
        blob_id
        for blob_id in blob_ids
        if blob_id not in present and not runtime.blobs.exists(blob_key(tenant.id, blob_id))
    )

    if repair and not report.clean:
        _repair(runtime, tenant, report)
    return report


def _stored_blobs(
    runtime: Runtime, tenant: TenantInfo, grace_seconds: float
) -> dict[str, uuid.UUID | None]:
    """Map each blob key under the tenant's prefix, old enough to judge, to the blob id it names."""
    cutoff = time.time() - grace_seconds
    stored: dict[str, uuid.UUID | None] = {}
    for blob in runtime.blobs.iter_blobs(f"tenants/{tenant.id}/blobs"):
        if blob.modified > cutoff:
            continue
        try:
            stored[blob.key] = uuid.UUID(blob.key.rsplit("/", 1)[-1])
        except ValueError:
            stored[blob.key] = None
    return stored


def _repair(runtime: Runtime, tenant: TenantInfo, report: TenantReport) -> None:
    with runtime.stores.session(tenant, write=True) as session:
        for blob_id in report.missing_blobs:
            _drop_versions_of_blob(session, blob_id)
        set_usage(session, tenant.id, count_usage(session))
        if report.missing_root:
            create_root(session)
    for key in report.orphan_blobs:
        runtime.blobs.delete(key)
    report.repaired = True
    log.warning(
        "store_repaired",
        tenant=tenant.slug,
        orphans_removed=len(report.orphan_blobs),
        rows_without_content=len(report.missing_blobs),
    )


def _drop_versions_of_blob(session: TenantSession, blob_id: uuid.UUID) -> None:
    versions = list(session.scalars(select(VersionRow).where(VersionRow.blob_id == blob_id)))
    node_ids = {version.node_id for version in versions}
    session.execute(delete(VersionRow).where(VersionRow.blob_id == blob_id))
    session.execute(delete(BlobRow).where(BlobRow.id == blob_id))
    for node_id in node_ids:
        _fall_back_to_newest_version(session, node_id)


def _fall_back_to_newest_version(session: TenantSession, node_id: uuid.UUID) -> None:
    node = session.scalars(select(NodeRow).where(NodeRow.id == node_id)).one()
    newest = session.scalars(
        select(VersionRow).where(VersionRow.node_id == node_id).order_by(VersionRow.number.desc())
    ).first()
    if newest is None:
        session.delete(node)
        return
    node.current_version_id = newest.id
    node.size = newest.size
    node.modified_at = newest.created_at
