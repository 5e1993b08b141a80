"""The hourly export sweep: expired exports go, lost jobs are enqueued again or given up.

A platform job enqueues `exports.sweep` for every tenant with a store, every
hour. For its tenant, the sweep deletes the exports whose `expires_at` has
passed (ready ones `export_retention_days` after they finished, failed ones
as long after they failed) with their blobs. It enqueues again the exports
queued for more than REQUEUE_AFTER, whose job was lost when the queue was
unreachable, and marks failed those still unfinished STUCK_AFTER after they
were requested: their worker was killed while it built them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from huey import crontab
from sqlalchemy import select, update

from strongroom.base.logging import get_logger
from strongroom.exports.building import enqueue_build, retention
from strongroom.exports.models import FAILED, QUEUED, RUNNING, ExportRow
from strongroom.exports.requests import delete_content, remove_rows
from strongroom.storage.db import TenantSession
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.jobs import NO_STORE, Job
from strongroom.tenancy.models import utcnow

if TYPE_CHECKING:
    from strongroom.runtime import Runtime

log = get_logger(__name__)

REQUEUE_AFTER = dt.timedelta(minutes=15)
# NOTE: sized for the audit trail and usage kinds, which take minutes at most. A kind that
# exports files may run longer and needs a longer limit, or a heartbeat on the row.
STUCK_AFTER = dt.timedelta(hours=6)
STUCK_REASON = (
    "the export did not finish within 6 hours of its request, because its job was lost "
    "with its worker; request it again"
)


@dataclass
class Swept:
    expired: list[uuid.UUID] = field(default_factory=list)
    requeued: list[uuid.UUID] = field(default_factory=list)
    given_up: list[uuid.UUID] = field(default_factory=list)


def schedule_sweeps(runtime: Runtime) -> int:
    """Enqueue the sweep of every tenant with a store, and return how many were enqueued."""
    tenants = [t for t in runtime.catalog.list_tenants() if t.status not in NO_STORE]
    for tenant in tenants:
        runtime.jobs.enqueue(SWEEP, tenant.id)
    return len(tenants)


def sweep_exports(runtime: Runtime, tenant: TenantInfo, now: dt.datetime | None = None) -> Swept:
    """Delete expired exports, enqueue lost jobs again, and give up stuck exports."""
    now = now or utcnow()
    swept = Swept()
    with runtime.stores.session(tenant, write=True) as session:
        swept.expired = list(
            session.scalars(select(ExportRow.id).where(ExportRow.expires_at <= now))
        )
        if swept.expired:
            remove_rows(session, swept.expired)
        unfinished = ExportRow.status.in_((QUEUED, RUNNING))
        swept.given_up = list(
            session.scalars(
                select(ExportRow.id).where(unfinished, ExportRow.created_at < now - STUCK_AFTER)
            )
        )
        if swept.given_up:
            _give_up(session, swept.given_up, now, retention(runtime))
        swept.requeued = list(
            session.scalars(
                select(ExportRow.id).where(
                    ExportRow.status == QUEUED,
                    ExportRow.created_at < now - REQUEUE_AFTER,
                    ExportRow.created_at >= now - STUCK_AFTER,
                )
            )
        )
    # Blobs go after their rows have committed: a crash in between leaves orphan blobs,
    # which `strongroom check` finds, never a ready export without content.
    for export_id in [*swept.expired, *swept.given_up]:
        delete_content(runtime, tenant, export_id)
    for export_id in swept.requeued:
        enqueue_build(runtime, tenant, export_id)
    if swept.expired or swept.requeued or swept.given_up:
        log.info(
            "exports_swept",
            expired=len(swept.expired),
            requeued=len(swept.requeued),
            given_up=len(swept.given_up),
        )
    return swept


def _give_up(
    session: TenantSession, export_ids: list[uuid.UUID], now: dt.datetime, retained: dt.timedelta
) -> None:
    session.execute(
        update(ExportRow)
        .where(ExportRow.id.in_(export_ids))
        .values(status=FAILED, reason=STUCK_REASON, finished_at=now, expires_at=now + retained)
    )


SWEEP = Job("exports.sweep", sweep_exports, retries=3, retry_delay=600)
SCHEDULE_SWEEPS = Job(
    "exports.schedule_sweeps",
    schedule_sweeps,
    per_tenant=False,
    schedule=crontab(minute="50"),
)
JOBS = (SWEEP, SCHEDULE_SWEEPS)
