"""The daily purge of old webhook deliveries, run by a real consumer of the job queue."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from strongroom.base.config import Settings
from strongroom.base.scoping import tenant_scoped_key
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.models import utcnow
from strongroom.webhooks.models import DeliveryRow
from strongroom.webhooks.retention import PURGE_DELIVERIES, SCHEDULE_DELIVERY_PURGES
from tests.conftest import Cast, Member
from tests.metering.conftest import JobWatcher
from tests.webhooks.conftest import (
    WAIT_SECONDS,
    Receiver,
    call,
    put_file,
    subscribe,
    wait_for_deliveries,
)

DAY = dt.timedelta(days=1)


def set_times(runtime: Runtime, tenant: TenantInfo, delivery_id: str, **times: Any) -> None:
    """Move a delivery's times into the past, as if it had been made long ago."""
    with runtime.stores.session(tenant, write=True) as session:
        session.execute(
            update(DeliveryRow).where(DeliveryRow.id == uuid.UUID(delivery_id)).values(**times)
        )


def ids_of(client: httpx.Client, admin: Member, webhook_id: str, state: str) -> set[str]:
    listed = call(client, admin, "GET", f"webhooks/{webhook_id}/deliveries?state={state}")
    return {delivery["id"] for delivery in listed["items"]}


def purge_outcome(jobs: JobWatcher, tenant: TenantInfo) -> str:
    """Wait for the purge job that the schedule enqueued for the tenant, and return how it ended."""
    prefix = tenant_scoped_key(tenant.id, "jobs", PURGE_DELIVERIES.name) + "/"
    deadline = time.monotonic() + WAIT_SECONDS
    while not (found := [task for task in list(jobs.outcomes) if task.startswith(prefix)]):
        assert time.monotonic() < deadline, f"no purge of tenant {tenant.slug} ran"
        time.sleep(0.05)
    return jobs.wait(found[0])


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The webhook test settings, with the retention of each state spelled out."""
    return settings.model_copy(
        update={"webhook_delivered_retention_days": 30, "webhook_dead_retention_days": 90}
    )


def test_purge_job_deletes_old_deliveries(
    client: httpx.Client,
    runtime: Runtime,
    cast: Cast,
    receiver: Receiver,
    jobs: JobWatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin, now = cast.acme_admin, utcnow()
    hook = subscribe(client, admin, receiver.url("/acme"))
    other_hook = subscribe(client, cast.globex_admin, receiver.url("/globex"))
    put_file(client, cast.acme_member, "docs/one.txt", b"one")
    put_file(client, cast.acme_member, "docs/two.txt", b"two")
    put_file(client, cast.globex_member, "docs/globex.txt", b"globex")
    old_delivered, new_delivered = wait_for_deliveries(client, admin, hook["id"], "delivered", 2)
    [other_delivered] = wait_for_deliveries(
        client, cast.globex_admin, other_hook["id"], "delivered"
    )
    receiver.default_status = 500
    put_file(client, cast.acme_member, "docs/three.txt", b"three")
    put_file(client, cast.acme_member, "docs/four.txt", b"four")
    unattempted, old_attempt = wait_for_deliveries(client, admin, hook["id"], "dead", 2)
    with monkeypatch.context() as patched:
        # A delivery whose job was lost stays pending, however old it is.
        patched.setattr(runtime.jobs, "enqueue", lambda *_args, **_kwargs: None)
        put_file(client, cast.acme_member, "docs/five.txt", b"five")
    [pending] = call(client, admin, "GET", f"webhooks/{hook['id']}/deliveries?state=pending")[
        "items"
    ]

    acme, globex = cast.acme, cast.globex
    set_times(runtime, acme, old_delivered["id"], delivered_at=now - 31 * DAY)
    set_times(runtime, acme, new_delivered["id"], delivered_at=now - 29 * DAY)
    set_times(runtime, globex, other_delivered["id"], delivered_at=now - 31 * DAY)
    # Died without an attempt, so its age counts from its creation.
    set_times(runtime, acme, unattempted["id"], last_attempt_at=None, created_at=now - 91 * DAY)
    # Created long ago, but its last attempt, after a replay, was recent enough.
    set_times(
        runtime,
        acme,
        old_attempt["id"],
        last_attempt_at=now - 89 * DAY,
        created_at=now - 200 * DAY,
    )
    set_times(runtime, acme, pending["id"], created_at=now - 400 * DAY)

    schedule = runtime.jobs.enqueue(SCHEDULE_DELIVERY_PURGES)

    assert jobs.wait(schedule) == "complete"
    assert purge_outcome(jobs, acme) == "complete"
    assert purge_outcome(jobs, globex) == "complete"
    assert ids_of(client, admin, hook["id"], "delivered") == {new_delivered["id"]}
    assert ids_of(client, admin, hook["id"], "dead") == {old_attempt["id"]}
    assert ids_of(client, admin, hook["id"], "pending") == {pending["id"]}
    assert ids_of(client, cast.globex_admin, other_hook["id"], "delivered") == set()
