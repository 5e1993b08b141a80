"""Building an export: the tenant job `exports.build`, its retries and its failure.

The job claims a queued export by moving it to `running` in a conditional
update, so that a second message for the same export (a duplicate, or one
re-enqueued by the sweep) finds nothing to claim and does nothing. It then
writes the content through `BlobUpload`, encrypted under a fresh blob key
wrapped by the tenant's current key, and marks the export `ready` in the
transaction that adds the blob row.

The blob's id is the export's id, so every attempt of one export writes the
same blob key and a retry replaces what an earlier attempt left instead of
adding a second blob. A failed attempt deletes the blob and puts the export
back to `queued` for huey to retry, after RETRY_DELAY seconds, or marks it
`failed` with a reason after MAX_ATTEMPTS.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError

from strongroom.base.errors import ServerStorageFull, StrongroomError
from strongroom.base.logging import get_logger
from strongroom.drive.content import BlobUpload, blob_key
from strongroom.drive.models import BlobRow
from strongroom.exports.kinds import KINDS
from strongroom.exports.models import FAILED, MAX_REASON_LENGTH, QUEUED, READY, RUNNING, ExportRow
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.jobs import Job
from strongroom.tenancy.models import utcnow

if TYPE_CHECKING:
    from strongroom.runtime import Runtime

log = get_logger(__name__)

RETRIES = 2
MAX_ATTEMPTS = RETRIES + 1
RETRY_DELAY = 60.0
SERVER_STORAGE_FULL = (
    "the server had no room left to store the export, so nothing of it was kept; the operator "
    "must free space on the server's storage"
)


@dataclass(frozen=True)
class Claim:
    """An export this run of the job has claimed, and the number of the attempt."""

    export_id: uuid.UUID
    kind: str
    format: str
    filters: dict[str, Any]
    attempt: int


def enqueue_build(runtime: Runtime, tenant: TenantInfo, export_id: uuid.UUID) -> None:
    runtime.jobs.enqueue(BUILD, tenant.id, export_id=str(export_id))


def build_export(runtime: Runtime, tenant: TenantInfo, export_id: str) -> None:
    """Write the export's content and mark it ready; on failure, retry or mark it failed.

    Raises the error of a failed attempt when a retry is left, so that huey retries it.
    """
    claim = _claim(runtime, tenant, uuid.UUID(export_id))
    if claim is None:
        return
    try:
        _build(runtime, tenant, claim)
    except Exception as exc:
        if _record_failure(runtime, tenant, claim, exc):
            raise


def retention(runtime: Runtime) -> dt.timedelta:
    return dt.timedelta(days=runtime.settings.export_retention_days)


def _claim(runtime: Runtime, tenant: TenantInfo, export_id: uuid.UUID) -> Claim | None:
    with runtime.stores.session(tenant, write=True) as session:
        claimed = session.execute(
            update(ExportRow)
            .where(ExportRow.id == export_id, ExportRow.status == QUEUED)
            .values(status=RUNNING, attempts=ExportRow.attempts + 1, started_at=utcnow())
        ).rowcount
        if not claimed:
            log.info("export_build_skipped", export_id=str(export_id), reason="not queued")
            return None
        export = session.get(ExportRow, (tenant.id, export_id), populate_existing=True)
        assert export is not None, "the export was just claimed in this transaction"
        return Claim(export.id, export.kind, export.format, dict(export.filters), export.attempts)


def _build(runtime: Runtime, tenant: TenantInfo, claim: Claim) -> None:
    kind = KINDS[claim.kind]
    upload = BlobUpload(
        runtime.blobs,
        runtime.keyring.current(tenant.id),
        runtime.settings.chunk_size,
        blob_id=claim.export_id,
    )
    try:
        kind.write(runtime, tenant, claim.filters, claim.format, upload.feed)
        blob, sha256 = upload.finish()
    except BaseException:
        upload.abort()
        raise
    if not _mark_ready(runtime, tenant, claim, blob, sha256):
        # Deleted while it was built, or given up by the sweep: its content goes too.
        runtime.blobs.delete(blob_key(tenant.id, claim.export_id))
        log.info("export_build_superseded", export_id=str(claim.export_id))
        return
    log.info(
        "export_ready",
        export_id=str(claim.export_id),
        kind=claim.kind,
        size=blob.size,
        attempt=claim.attempt,
    )


def _mark_ready(
    runtime: Runtime, tenant: TenantInfo, claim: Claim, blob: BlobRow, sha256: str
) -> bool:
    """Add the blob row and mark the export ready, unless it changed since the claim."""
    now = utcnow()
    with runtime.stores.session(tenant, write=True) as session:
        changed = session.execute(
            update(ExportRow)
            .where(*_still_claimed(claim))
            .values(
                status=READY,
                reason=None,
                size=blob.size,
                sha256=sha256,
                finished_at=now,
                expires_at=now + retention(runtime),
            )
        ).rowcount
        if changed:
            session.merge(blob)
    return bool(changed)


def _record_failure(runtime: Runtime, tenant: TenantInfo, claim: Claim, error: Exception) -> bool:
    """Delete what the attempt wrote and record the failure; return True when a retry is left."""
    # The blob goes first: if the database is what failed, the update below fails too,
    # and the export is left `running` for the sweep to give up, without content.
    try:
        runtime.blobs.delete(blob_key(tenant.id, claim.export_id))
    except OSError as exc:
        # `strongroom check` reports the blob, which has no row, as an orphan.
        log.error("export_blob_not_deleted", export_id=str(claim.export_id), error=str(exc))
    retry = claim.attempt < MAX_ATTEMPTS
    cause = describe_error(error)
    # A full server storage has its error line from the store that found it.
    report = log.warning if isinstance(error, ServerStorageFull) else log.error
    report(
        "export_attempt_failed",
        export_id=str(claim.export_id),
        attempt=claim.attempt,
        retry=retry,
        error=str(error),
        error_type=type(error).__name__,
    )
    if retry:
        values: dict[str, Any] = {
            "status": QUEUED,
            "reason": f"attempt {claim.attempt} failed: {cause}; it is retried",
        }
    else:
        now = utcnow()
        values = {
            "status": FAILED,
            "reason": f"the export failed after {claim.attempt} attempts: {cause}; request it "
            "again, and tell the operator if it fails again",
            "finished_at": now,
            "expires_at": now + retention(runtime),
        }
    values["reason"] = values["reason"][:MAX_REASON_LENGTH]
    with runtime.stores.session(tenant, write=True) as session:
        session.execute(update(ExportRow).where(*_still_claimed(claim)).values(**values))
    return retry


def describe_error(error: Exception) -> str:
    """Return what failed in words for the tenant's admins, without paths or internal detail."""
    if isinstance(error, ServerStorageFull):
        return SERVER_STORAGE_FULL
    if isinstance(error, StrongroomError):
        return error.detail
    if isinstance(error, OSError):
        return f"the blob store failed ({error.strerror or type(error).__name__})"
    if isinstance(error, SQLAlchemyError):
        return "the database failed"
    return f"an unexpected {type(error).__name__}"


def _still_claimed(claim: Claim) -> tuple[Any, ...]:
    return (
        ExportRow.id == claim.export_id,
        ExportRow.status == RUNNING,
        ExportRow.attempts == claim.attempt,
    )


BUILD = Job("exports.build", build_export, retries=RETRIES, retry_delay=RETRY_DELAY)
JOBS = (BUILD,)
