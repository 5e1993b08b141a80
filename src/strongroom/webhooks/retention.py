"""Purging old webhook deliveries: a daily platform job enqueues a purge for every tenant.

Deliveries are kept for the delivery list and for replay, not for ever. A
delivered one is deleted `webhook_delivered_retention_days` (default 30)
after its delivery. A dead one is deleted `webhook_dead_retention_days`
(default 90) after its last attempt, or after its creation when it died
without one, because the module or the webhook was off when it came due.
Pending deliveries are never purged,
because they are still being tried. The purge deletes in batches of
`PURGE_BATCH` rows, a transaction each, so that a tenant with a large backlog
does not hold a long write lock.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from huey import crontab
from sqlalchemy import ColumnElement, and_, delete, func, or_, select

from strongroom.base.logging import get_logger
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.jobs import NO_STORE, Job
from strongroom.tenancy.models import utcnow
from strongroom.webhooks.models import DEAD, DELIVERED, DeliveryRow

if TYPE_CHECKING:
    from strongroom.runtime import Runtime

log = get_logger(__name__)

PURGE_BATCH = 1000


def schedule_delivery_purges(runtime: Runtime) -> int:
    """Enqueue a delivery purge for every tenant with a store, and return how many were enqueued.

    Tenants with the module off are purged too, because their old deliveries stay.
    """
    tenants = [t for t in runtime.catalog.list_tenants() if t.status not in NO_STORE]
    for tenant in tenants:
        runtime.jobs.enqueue(PURGE_DELIVERIES, tenant.id)
    log.info("webhook_delivery_purges_scheduled", tenants=len(tenants))
    return len(tenants)


def purge_deliveries(runtime: Runtime, tenant: TenantInfo, now: dt.datetime | None = None) -> int:
    """Delete the tenant's delivered and dead deliveries past their retention; return how many."""
    now = now or utcnow()
    settings = runtime.settings
    delivered_before = now - dt.timedelta(days=settings.webhook_delivered_retention_days)
    dead_before = now - dt.timedelta(days=settings.webhook_dead_retention_days)
    last_attempt = func.coalesce(DeliveryRow.last_attempt_at, DeliveryRow.created_at)
    expired = or_(
        and_(DeliveryRow.state == DELIVERED, DeliveryRow.delivered_at < delivered_before),
        and_(DeliveryRow.state == DEAD, last_attempt < dead_before),
    )
    purged = 0
    while True:
        batch = _purge_batch(runtime, tenant, expired)
        purged += batch
        if batch < PURGE_BATCH:
            break
    if purged:
        log.info("webhook_deliveries_purged", deliveries=purged)
    return purged


def _purge_batch(runtime: Runtime, tenant: TenantInfo, expired: ColumnElement[bool]) -> int:
    with runtime.stores.session(tenant, write=True) as session:
        ids = list(session.scalars(select(DeliveryRow.id).where(expired).limit(PURGE_BATCH)))
        if ids:
            session.execute(delete(DeliveryRow).where(DeliveryRow.id.in_(ids)))
    return len(ids)


PURGE_DELIVERIES = Job("webhooks.purge_deliveries", purge_deliveries, retries=3, retry_delay=600)
SCHEDULE_DELIVERY_PURGES = Job(
    "webhooks.schedule_delivery_purges",
    schedule_delivery_purges,
    per_tenant=False,
    schedule=crontab(minute="50", hour="3"),
)
JOBS = (PURGE_DELIVERIES, SCHEDULE_DELIVERY_PURGES)
