"""Trash expiry: items trashed longer ago than the retention period are deleted for good.

A daily platform job enqueues `trash.expire` for every tenant, and that job
purges the tenant's expired items as an admin would, blobs and used bytes
included. An item inside a trashed folder expires by its own trash time, or
with the folder.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from huey import crontab
from sqlalchemy import select

from strongroom.base.errors import NotFound
from strongroom.base.logging import get_logger
from strongroom.drive import transfers
from strongroom.drive.models import NodeRow
from strongroom.drive.trash import Purged
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.jobs import NO_STORE, Job

if TYPE_CHECKING:
    from strongroom.runtime import Runtime

log = get_logger(__name__)


def retention_days(runtime: Runtime, tenant: TenantInfo) -> int:
    """Return how many days the tenant's trash keeps an item."""
    # NOTE: tenants have no trash retention setting of their own yet, so every tenant gets
    # STRONGROOM_TRASH_RETENTION_DAYS. A tenant setting, once it exists, belongs here.
    return runtime.settings.trash_retention_days


def expire_trash(runtime: Runtime, tenant: TenantInfo, now: dt.datetime | None = None) -> Purged:
    """Purge the tenant's items trashed before the retention period began, and return the total."""
    now = now or dt.datetime.now(dt.UTC)
    cutoff = now - dt.timedelta(days=retention_days(runtime, tenant))
    with runtime.stores.session(tenant) as session:
        expired = list(
            session.scalars(
                select(NodeRow.id)
                .where(NodeRow.deleted_at.is_not(None), NodeRow.deleted_at < cutoff)
                .order_by(NodeRow.deleted_at)
            )
        )

    total = Purged(nodes=0, bytes=0, blob_ids=[])
    for node_id in expired:
        try:
            purged = transfers.purge(runtime, tenant, node_id, actor=None)
        except NotFound:
            continue  # purged already, with an expired folder above it
        total.nodes += purged.nodes
        total.bytes += purged.bytes
    if expired:
        log.info("trash_expired", items=len(expired), nodes=total.nodes, bytes=total.bytes)
    return total


def schedule_trash_expiry(runtime: Runtime) -> int:
    """Enqueue trash expiry for every tenant with a store, and return how many were enqueued."""
    tenants = [t for t in runtime.catalog.list_tenants() if t.status not in NO_STORE]
    for tenant in tenants:
        runtime.jobs.enqueue(EXPIRE_TRASH, tenant.id)
    log.info("trash_expiry_scheduled", tenants=len(tenants))
    return len(tenants)


EXPIRE_TRASH = Job("trash.expire", expire_trash, retries=3, retry_delay=600)
SCHEDULE_TRASH_EXPIRY = Job(
    "trash.schedule_expiry",
    schedule_trash_expiry,
    per_tenant=False,
    schedule=crontab(minute="35", hour="3"),
)
JOBS = (EXPIRE_TRASH, SCHEDULE_TRASH_EXPIRY)
