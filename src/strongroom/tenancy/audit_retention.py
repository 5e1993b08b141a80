"""Audit retention: a daily platform job deletes events older than the tenant's retention.

The tenant setting `audit_retention_days` is 0 by default, which keeps every
event, or 30 to 36500 days. The tenant role may not delete audit events on
PostgreSQL, so each batch switches to the audit purge role
(`isolation.rights_to_delete`), which row security still confines to the
tenant. Batches of `PURGE_BATCH` events, a transaction each, keep a large
backlog from holding a long write lock.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from huey import crontab
from sqlalchemy import delete, select

from strongroom.base.logging import get_logger
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.events import AuditEventRow
from strongroom.tenancy.isolation import rights_to_delete
from strongroom.tenancy.jobs import NO_STORE, Job
from strongroom.tenancy.models import utcnow

if TYPE_CHECKING:
    from strongroom.runtime import Runtime

log = get_logger(__name__)

PURGE_BATCH = 1000


def schedule_audit_expiry(runtime: Runtime) -> int:
    """Enqueue audit expiry for every tenant with a store and a retention; return how many."""
    tenants = [
        tenant
        for tenant in runtime.catalog.list_tenants()
        if tenant.status not in NO_STORE and tenant.settings.audit_retention_days > 0
    ]
    for tenant in tenants:
        runtime.jobs.enqueue(EXPIRE_AUDIT_EVENTS, tenant.id)
    log.info("audit_expiry_scheduled", tenants=len(tenants))
    return len(tenants)


def expire_audit_events(runtime: Runtime, tenant: TenantInfo, now: dt.datetime | None = None) -> int:
    """Delete the tenant's audit events older than its retention; return how many were deleted."""
    days = tenant.settings.audit_retention_days
    if days == 0:
        return 0
    before = (now or utcnow()) - dt.timedelta(days=days)
    deleted = 0
    while True:
        batch = _delete_batch(runtime, tenant, before)
        deleted += batch
        if batch < PURGE_BATCH:
            break
    if deleted:
        log.info("audit_events_expired", events=deleted, retention_days=days)
    return deleted


def _delete_batch(runtime: Runtime, tenant: TenantInfo, before: dt.datetime) -> int:
    table = AuditEventRow.__tablename__
    with runtime.stores.session(tenant, write=True) as session, rights_to_delete(session, table):
        ids = list(
            session.scalars(
                select(AuditEventRow.id)
                .where(AuditEventRow.occurred_at < before)
                .order_by(AuditEventRow.occurred_at)
                .limit(PURGE_BATCH)
            )
        )
        if ids:
            session.execute(delete(AuditEventRow).where(AuditEventRow.id.in_(ids)))
    return len(ids)


EXPIRE_AUDIT_EVENTS = Job("audit.expire", expire_audit_events, retries=3, retry_delay=600)
SCHEDULE_AUDIT_EXPIRY = Job(
    "audit.schedule_expiry",
    schedule_audit_expiry,
    per_tenant=False,
    schedule=crontab(minute="20", hour="4"),
)
JOBS = (EXPIRE_AUDIT_EVENTS, SCHEDULE_AUDIT_EXPIRY)
