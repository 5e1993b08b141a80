"""Consistency between the tenant stores and the blob store, for `strongroom check`.

Orphan blobs are blobs that no row refers to, left by a crash between
publishing a blob and committing its version, or between deleting rows and
deleting the blob. Then come rows whose blob is missing, damaged blobs (a
stored size that differs from the row's, or with `verify` a blob that fails
to decrypt), abandoned uploads, and resumable uploads that have expired.
Stored parts of resumable uploads that no upload row names count as orphans
too. A resumable upload that a crash left with fewer stored bytes than its
offset, or with its blob published but not recorded, is reported, and the
blob of an unfinished upload is never an orphan: the upload may adopt it. A usage counter that differs from the recount is reported, and so are
folder loops. With `repair`, orphans, abandoned and expired uploads are
removed, rows without sound content are deleted (a file falls back to its
newest version that still has content, or is removed), damaged blobs are
deleted, unsettled uploads are settled as their next request would (the
blob adopted or taken back, or the offset moved back to the stored bytes),
and the usage counter is recounted.
Folder loops are only reported: which link to cut is a person's decision.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy import delete, select

from strongroom.base.errors import IntegrityError
from strongroom.base.logging import get_logger
from strongroom.drive import resumable, upload_parts
from strongroom.drive.content import blob_key, read_range
from strongroom.drive.files import count_usage
from strongroom.drive.models import BlobRow, NodeRow, UploadRow, VersionRow
from strongroom.runtime import Runtime
from strongroom.storage.db import TenantSession
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.models import utcnow
from strongroom.tenancy.usage import get_usage, set_usage

log = get_logger(__name__)

# A blob is published a moment before its version row commits, so a younger file
# may belong to an upload still in flight and is not called an orphan.
DEFAULT_GRACE_SECONDS = 15 * 60

# Blob rows read per transaction while verifying, so a long verification keeps no
# transaction open and no list of every row in memory.
VERIFY_BATCH = 500


@dataclass
class TenantReport:
    slug: str
    orphan_blobs: list[str] = field(default_factory=list)
    missing_blobs: list[uuid.UUID] = field(default_factory=list)
    damaged_blobs: list[uuid.UUID] = field(default_factory=list)
    expired_uploads: list[uuid.UUID] = field(default_factory=list)
    # Unfinished uploads whose stored parts disagree with their row, with what is wrong.
    unsettled_uploads: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    folder_loops: list[list[uuid.UUID]] = field(default_factory=list)
    usage_recorded: int = 0
    usage_counted: int = 0
    repaired: bool = False

    @property
    def usage_mismatch(self) -> bool:
        return self.usage_recorded != self.usage_counted

    @property
    def clean(self) -> bool:
        return not (
            self.orphan_blobs
            or self.missing_blobs
            or self.damaged_blobs
            or self.expired_uploads
            or self.unsettled_uploads
            or self.folder_loops
            or self.usage_mismatch
        )

    @property
    def needs_manual_repair(self) -> bool:
        return bool(self.folder_loops)


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

    @property
    def needs_manual_repair(self) -> bool:
        return any(tenant.needs_manual_repair for tenant in self.tenants)


def check_all(
    runtime: Runtime,
    repair: bool,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    verify: bool = False,
) -> Report:
    report = Report()
    tenants = runtime.catalog.list_tenants()
    for tenant in tenants:
        report.tenants.append(check_tenant(runtime, tenant, repair, grace_seconds, verify))

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
    runtime: Runtime,
    tenant: TenantInfo,
    repair: bool,
    grace_seconds: float,
    verify: bool = False,
) -> TenantReport:
    """Check one tenant. With `verify`, also decrypt every blob, which reads all of its content."""
    report = TenantReport(slug=tenant.slug)
    with runtime.stores.session(tenant) as session:
        stored_sizes = {
            row.id: row.stored_size
            for row in session.execute(select(BlobRow.id, BlobRow.stored_size))
        }
        report.usage_recorded = get_usage(session)
        report.usage_counted = count_usage(session)
        parents = {
            row.id: row.parent_id for row in session.execute(select(NodeRow.id, NodeRow.parent_id))
        }
        report.expired_uploads = sorted(
            session.scalars(select(UploadRow.id).where(UploadRow.expires_at <= utcnow()))
        )
        unfinished = {
            row.id: row.blob_id
            for row in session.execute(
                select(UploadRow.id, UploadRow.blob_id).where(
                    UploadRow.completed_at.is_(None), UploadRow.expires_at > utcnow()
                )
            )
        }
    report.folder_loops = find_folder_loops(parents)

    # Every stored blob is listed, young ones too: a blob with a row was published
    # before the row committed, so its size is final whatever its age.
    cutoff = time.time() - grace_seconds
    sizes: dict[uuid.UUID, int] = {}
    adoptable = set(unfinished.values())
    for blob in runtime.blobs.iter_blobs(f"tenants/{tenant.id}/blobs"):
        blob_id = _blob_id_of(blob.key)
        if blob_id in stored_sizes and blob.key == blob_key(tenant.id, blob_id):
            sizes[blob_id] = blob.size
        elif blob_id in adoptable and blob.key == blob_key(tenant.id, blob_id):
            continue  # an unfinished upload's own blob, which the upload check below covers
        elif blob.modified <= cutoff:
            report.orphan_blobs.append(blob.key)
    report.orphan_blobs += _orphan_upload_parts(runtime, tenant, cutoff)
    report.orphan_blobs.sort()
    report.missing_blobs = sorted(
        blob_id
        for blob_id in stored_sizes
        if blob_id not in sizes and not runtime.blobs.exists(blob_key(tenant.id, blob_id))
    )
    report.damaged_blobs = sorted(
        blob_id for blob_id, size in sizes.items() if size != stored_sizes[blob_id]
    )
    if verify:
        skipped = {*report.missing_blobs, *report.damaged_blobs}
        report.damaged_blobs = sorted(
            {*report.damaged_blobs, *_undecryptable_blobs(runtime, tenant, skipped)}
        )

    for upload_id in sorted(unfinished):
        problem = resumable.inspect_upload(runtime, tenant, upload_id, repair)
        if problem is not None:
            report.unsettled_uploads.append((upload_id, problem))

    if repair and not report.clean:
        _repair(runtime, tenant, report)
    return report


def _orphan_upload_parts(runtime: Runtime, tenant: TenantInfo, cutoff: float) -> list[str]:
    """Return the stored parts of resumable uploads that no upload row names.

    A request that stopped between writing a new tail and recording its
    offset leaves one behind, and so does a deletion that failed.
    """
    named = resumable.list_live_upload_keys(runtime, tenant)
    return [
        part.key
        for part in runtime.blobs.iter_blobs(upload_parts.uploads_prefix(tenant.id))
        if part.key not in named and part.modified <= cutoff
    ]


def find_folder_loops(parents: dict[uuid.UUID, uuid.UUID | None]) -> list[list[uuid.UUID]]:
    """Return each cycle of the parent links once, as its node ids in parent order.

    The walk remembers the nodes it has passed, so a loop ends it instead of
    keeping it going, and never passes a node twice, so the cost stays linear in
    the number of nodes.
    """
    loops: list[list[uuid.UUID]] = []
    settled: set[uuid.UUID] = set()
    for start in parents:
        chain: list[uuid.UUID] = []
        on_chain: set[uuid.UUID] = set()
        node: uuid.UUID | None = start
        while node is not None and node not in settled and node in parents:
            if node in on_chain:
                loops.append(chain[chain.index(node) :])
                break
            chain.append(node)
            on_chain.add(node)
            node = parents[node]
        settled.update(chain)
    return loops


def _undecryptable_blobs(
    runtime: Runtime, tenant: TenantInfo, skipped: set[uuid.UUID]
) -> list[uuid.UUID]:
    """Decrypt every blob of the tenant chunk by chunk and return those that fail.

    A tenant key that does not unwrap raises instead: that is a wrong master key
    or a damaged catalog, and calling every blob damaged would let a repair
    delete them all.
    """
    failed: list[uuid.UUID] = []
    after: uuid.UUID | None = None
    while True:
        with runtime.stores.session(tenant) as session:
            query = select(BlobRow).order_by(BlobRow.id).limit(VERIFY_BATCH)
            if after is not None:
                query = query.where(BlobRow.id > after)
            batch = list(session.scalars(query))
        if not batch:
            return failed
        after = batch[-1].id
        for blob in batch:
            if blob.id in skipped:
                continue
            tenant_key = runtime.keyring.version(tenant.id, blob.key_version)
            try:
                for _plaintext in read_range(runtime.blobs, blob, tenant_key, 0, blob.size - 1):
                    pass
            except IntegrityError as exc:
                log.warning(
                    "blob_damaged", tenant=tenant.slug, blob_id=str(blob.id), error=exc.detail
                )
                failed.append(blob.id)


def _blob_id_of(key: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(key.rsplit("/", 1)[-1])
    except ValueError:
        return None


def _repair(runtime: Runtime, tenant: TenantInfo, report: TenantReport) -> None:
    with runtime.stores.session(tenant, write=True) as session:
        for blob_id in [*report.missing_blobs, *report.damaged_blobs]:
            _drop_versions_of_blob(session, blob_id)
        set_usage(session, tenant.id, count_usage(session))
    resumable.sweep_expired_uploads(runtime, tenant)
    # Files go only after their rows have committed: a crash in between leaves
    # orphans, which the next check removes, never rows without a blob.
    for key in report.orphan_blobs:
        runtime.blobs.delete(key)
    for blob_id in report.damaged_blobs:
        runtime.blobs.delete(blob_key(tenant.id, blob_id))
    report.repaired = True
    log.warning(
        "store_repaired",
        tenant=tenant.slug,
        orphans_removed=len(report.orphan_blobs),
        rows_without_content=len(report.missing_blobs),
        damaged_blobs_removed=len(report.damaged_blobs),
        expired_uploads_removed=len(report.expired_uploads),
        uploads_settled=len(report.unsettled_uploads),
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
