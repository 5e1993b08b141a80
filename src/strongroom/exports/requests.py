"""Export requests of tenant admins: request one, list them, read one, delete one.

Each change records its audit event in its own transaction. The caller
enqueues the job of a requested export once the transaction has committed,
with `building.enqueue_build`, and deletes the blob of a deleted export after commit,
with `delete_content`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select

from strongroom.base.errors import Conflict, NotFound
from strongroom.base.logging import get_logger
from strongroom.drive.content import blob_key
from strongroom.drive.models import BlobRow
from strongroom.exports.kinds import kind_named
from strongroom.exports.models import QUEUED, READY, RUNNING, ExportRow
from strongroom.storage.db import TenantSession
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.events import Actor, Target, add_event
from strongroom.tenancy.models import utcnow

if TYPE_CHECKING:
    from strongroom.runtime import Runtime

log = get_logger(__name__)

# NOTE: a listing shows the newest exports only. Expiry keeps the table short, since
# every export, failed ones included, is deleted after the retention.
MAX_LISTED = 200
# Exports of one tenant waiting for or holding a worker, so that one tenant's admin cannot
# fill the queue that every tenant's jobs share.
MAX_UNFINISHED = 5


def request_export(
    session: TenantSession,
    tenant: TenantInfo,
    actor: Actor,
    requested_by: uuid.UUID,
    kind_name: str,
    filters: Mapping[str, Any] | None,
    format_name: str | None,
) -> ExportRow:
    """Add a queued export once its kind, filters and format pass; raise InvalidInput if not."""
    kind = kind_named(kind_name)
    chosen_format = kind.format_named(format_name)
    checked = kind.check_filters(tenant, filters or {})
    check_room_for_export(session)
    export = ExportRow(
        tenant_id=tenant.id,
        id=uuid.uuid4(),
        kind=kind.name,
        format=chosen_format.name,
        filters=checked,
        requested_by=requested_by,
        status=QUEUED,
        attempts=0,
        created_at=utcnow(),
    )
    session.add(export)
    add_event(
        session,
        tenant,
        "export_requested",
        actor,
        target=Target("export", export.id),
        new={"kind": export.kind, "format": export.format, "filters": checked},
    )
    return export


def check_room_for_export(session: TenantSession) -> None:
    """Raise Conflict when the tenant has MAX_UNFINISHED exports queued or running."""
    unfinished = session.scalar(
        select(func.count()).select_from(ExportRow).where(ExportRow.status.in_((QUEUED, RUNNING)))
    )
    if unfinished and unfinished >= MAX_UNFINISHED:
        raise Conflict(
            f"the tenant has {unfinished} exports queued or running, the most it may have; "
            "wait until one is ready or failed, or delete one, then request again"
        )


def list_exports(session: TenantSession) -> list[ExportRow]:
    """Return the tenant's newest exports, newest first."""
    query = select(ExportRow).order_by(ExportRow.created_at.desc(), ExportRow.id).limit(MAX_LISTED)
    return list(session.scalars(query))


def access_export(session: TenantSession, export_id: uuid.UUID) -> ExportRow:
    """Return the export, or raise NotFound, also for another tenant's export."""
    export = session.get(ExportRow, (session.tenant_id, export_id))
    if export is None:
        raise NotFound(f"no export has the id {str(export_id)!r}")
    return export


def access_ready_content(
    session: TenantSession, export_id: uuid.UUID, now: dt.datetime | None = None
) -> tuple[ExportRow, BlobRow]:
    """Return a ready export and its blob; raise Conflict while it is not ready or once expired."""
    export = access_export(session, export_id)
    if export.status != READY:
        hint = (
            "request a new export"
            if export.status == "failed"
            else "wait until its status is ready, as GET on the export shows"
        )
        raise Conflict(f"export {str(export_id)!r} is {export.status}, not ready; {hint}")
    expires_at = _utc(export.expires_at) if export.expires_at else None
    if expires_at is not None and expires_at <= (now or utcnow()):
        raise Conflict(
            f"export {str(export_id)!r} expired at {expires_at.isoformat()}; request a new export"
        )
    blob = session.get(BlobRow, (session.tenant_id, export.id))
    if blob is None:
        raise Conflict(
            f"export {str(export_id)!r} has lost its content, which a consistency repair "
            "removed; request a new export"
        )
    return export, blob


def delete_export(
    session: TenantSession, tenant: TenantInfo, actor: Actor, export_id: uuid.UUID
) -> ExportRow:
    """Delete the export and its blob row; the caller deletes the blob with `delete_content`.

    An export whose job is running can be deleted too: the job then finds
    its row gone and removes the blob it wrote.
    """
    export = access_export(session, export_id)
    remove_rows(session, [export.id])
    add_event(
        session,
        tenant,
        "export_deleted",
        actor,
        target=Target("export", export.id),
        old={"kind": export.kind, "status": export.status},
    )
    return export


def remove_rows(session: TenantSession, export_ids: list[uuid.UUID]) -> None:
    """Delete the exports and their blob rows, whose ids are the exports' ids."""
    session.execute(delete(BlobRow).where(BlobRow.id.in_(export_ids)))
    session.execute(delete(ExportRow).where(ExportRow.id.in_(export_ids)))


def delete_content(runtime: Runtime, tenant: TenantInfo, export_id: uuid.UUID) -> None:
    """Remove an export's blob from the blob store; a missing blob is not an error."""
    runtime.blobs.delete(blob_key(tenant.id, export_id))


def _utc(moment: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes for timezone-aware columns; they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
