"""Trash expiry as a background job: every tenant's trash is swept once a day.

A daily platform job enqueues `trash.expire` for every tenant with a store,
and that job runs `transfers.expire_trash`, which purges what has been in
the trash longer than the tenant's `trash_retention_days` setting, blobs and
used bytes included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from huey import crontab

from strongroom.base.logging import get_logger
from strongroom.drive import transfers
from strongroom.tenancy.jobs import NO_STORE, Job

if TYPE_CHECKING:
    from strongroom.runtime import Runtime

log = get_logger(__name__)


def schedule_trash_expiry(runtime: Runtime) -> int:
    """Enqueue trash expiry for every tenant with a store, and return how many were enqueued."""
    tenants = [t for t in runtime.catalog.list_tenants() if t.status not in NO_STORE]
    for tenant in tenants:
        runtime.jobs.enqueue(EXPIRE_TRASH, tenant.id)
    log.info("trash_expiry_scheduled", tenants=len(tenants))
    return len(tenants)


EXPIRE_TRASH = Job("trash.expire", transfers.expire_trash, retries=3, retry_delay=600)
SCHEDULE_TRASH_EXPIRY = Job(
    "trash.schedule_expiry",
    schedule_trash_expiry,
    per_tenant=False,
    schedule=crontab(minute="35", hour="3"),
)
JOBS = (EXPIRE_TRASH, SCHEDULE_TRASH_EXPIRY)
