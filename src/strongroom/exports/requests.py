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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, delete, func, or_, select

from strongroom.base.errors import Conflict, ExportLimitReached, NotFound
from strongroom.base.logging import get_logger
from strongroom.drive.content import blob_key
from strongroom.drive.models import BlobRow
from strongroom.exports.kinds import kind_named
from strongroom.exports.models import (
    EXPIRED,
    FAILED,
    QUEUED,
    READY,
    RUNNING,
    ExportRow,
    as_utc,
)
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
# Exports of one tenant queued, running or ready and not expired. Their content is stored
# outside the tenant's quota, so the count is capped, and so are the bytes, by the setting
# `export_max_held_bytes`.
MAX_HELD = 10
FREE_ROOM = (
    "delete an export you no longer need (DELETE {base}/api/v1/admin/exports/{id}, or Delete "
    "in the list of exports) or wait until one expires, then request again"
)


@dataclass(frozen=True)
class Holding:
    """Counts of a tenant's exports that count against its limits, and their ready bytes."""

    unfinished: int
    held: int
    held_bytes: int


def request_export(
    session: TenantSession,
    tenant: TenantInfo,
    actor: Actor,
    requested_by: uuid.UUID,
    kind_name: str,
    filters: Mapping[str, Any] | None,
    format_name: str | None,
    max_held_bytes: int,
) -> ExportRow:
    """Add a queued export once its kind, filters and format pass and the tenant has room.

    Raises InvalidInput for a bad kind, filter or format, and ExportLimitReached
    when the tenant is at one of its limits on exports.
    """
    kind = kind_named(kind_name)
    chosen_format = kind.format_named(format_name)
    checked = kind.check_filters(tenant, filters or {})
    check_room_for_export(session, max_held_bytes)
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


def check_room_for_export(
    session: TenantSession, max_held_bytes: int, now: dt.datetime | None = None
) -> Holding:
    """Return the tenant's export counts, or raise ExportLimitReached if one more won't fit.

    The counts are read without a lock, so two concurrent requests may both
    pass them: each limit can be passed by the requests in flight.
    """
    holding = get_holding(session, now or utcnow())
    figures = {
        "unfinished": holding.unfinished,
        "held": holding.held,
        "held_bytes": holding.held_bytes,
        "max_unfinished": MAX_UNFINISHED,
        "max_held": MAX_HELD,
        "max_held_bytes": max_held_bytes,
    }
    if holding.unfinished >= MAX_UNFINISHED:
        raise ExportLimitReached(
            f"the tenant has {holding.unfinished} exports queued or running, the most it may "
            "have; wait until one is ready or failed, or delete one, then request again",
            **figures,
        )
    if holding.held >= MAX_HELD:
        raise ExportLimitReached(
            f"the tenant has {holding.held} exports queued, running or ready, the maximum "
            f"it may keep; {FREE_ROOM}",
            **figures,
        )
    if holding.held_bytes >= max_held_bytes:
        raise ExportLimitReached(
            f"the tenant's ready exports take {holding.held_bytes} bytes, and the maximum is "
            f"{max_held_bytes} bytes; {FREE_ROOM}",
            **figures,
        )
    return holding


def get_holding(session: TenantSession, now: dt.datetime) -> Holding:
    """Count the exports queued, running or ready and not expired, and the bytes of ready ones."""
    unfinished = ExportRow.status.in_((QUEUED, RUNNING))
    query = select(
        func.count(),
        func.coalesce(func.sum(case((unfinished, 1), else_=0)), 0),
        func.coalesce(func.sum(ExportRow.size), 0),
    ).where(
        ExportRow.status != FAILED,
        or_(ExportRow.expires_at.is_(None), ExportRow.expires_at > now),
    )
    held, unfinished_count, held_bytes = session.execute(query).one()
    return Holding(unfinished=int(unfinished_count), held=int(held), held_bytes=int(held_bytes))


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
    status = export.status_at(now or utcnow())
    if status == EXPIRED:
        assert export.expires_at is not None, "only an export with an expiry time expires"
        expired_at = as_utc(export.expires_at).isoformat()
        raise Conflict(f"export {str(export_id)!r} expired at {expired_at}; request a new export")
    if status != READY:
        hint = (
            "request a new export"
            if status == FAILED
            else "wait until its status is ready, as GET on the export shows"
        )
        raise Conflict(f"export {str(export_id)!r} is {status}, not ready; {hint}")
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
        old={"kind": export.kind, "status": export.status_at(utcnow())},
    )
    return export


def remove_rows(session: TenantSession, export_ids: list[uuid.UUID]) -> None:
    """Delete the exports and their blob rows, whose ids are the exports' ids."""
    session.execute(delete(BlobRow).where(BlobRow.id.in_(export_ids)))
    session.execute(delete(ExportRow).where(ExportRow.id.in_(export_ids)))


def delete_content(runtime: Runtime, tenant: TenantInfo, export_id: uuid.UUID) -> None:
    """Remove an export's blob from the blob store; a missing blob is not an error."""
    runtime.blobs.delete(blob_key(tenant.id, export_id))
