"""Trash expiry as a background job: scheduled for every tenant, run through the queue."""

from __future__ import annotations

import datetime as dt

from huey.signals import SIGNAL_COMPLETE
from sqlalchemy import update

from strongroom.drive.models import NodeRow
from strongroom.drive.retention import EXPIRE_TRASH, schedule_trash_expiry
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.models import utcnow
from tests.conftest import Cast
from tests.drive.test_trash_expiry import store, trash_file, trashed_names
from tests.metering.conftest import JobWatcher


def age_trash(runtime: Runtime, tenant: TenantInfo, days: int) -> None:
    """Make everything in the tenant's trash look trashed `days` days ago."""
    with runtime.stores.session(tenant, write=True) as session:
        session.execute(
            update(NodeRow)
            .where(NodeRow.deleted_at.is_not(None))
            .values(deleted_at=utcnow() - dt.timedelta(days=days))
        )


def test_trash_expiry_job_purges_one_tenant(runtime: Runtime, cast: Cast, jobs: JobWatcher) -> None:
    for tenant in (cast.acme, cast.globex):
        store(runtime, tenant, "old.txt", b"old")
        store(runtime, tenant, "fresh.txt", b"fresh")
        trash_file(runtime, tenant, "old.txt")
        age_trash(runtime, tenant, days=31)
        trash_file(runtime, tenant, "fresh.txt")

    task = runtime.jobs.enqueue(EXPIRE_TRASH, cast.acme.id)

    assert jobs.wait(task) == SIGNAL_COMPLETE
    assert trashed_names(runtime, cast.acme) == ["fresh.txt"]
    assert trashed_names(runtime, cast.globex) == ["fresh.txt", "old.txt"]


def test_trash_expiry_is_scheduled_for_every_tenant(runtime: Runtime, cast: Cast) -> None:
    assert schedule_trash_expiry(runtime) == 2
