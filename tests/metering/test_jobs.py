"""Background jobs: a tenant job needs its tenant to be enqueued and to run, and runs bound to it."""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from huey import crontab
from huey.signals import SIGNAL_CANCELED, SIGNAL_COMPLETE

from strongroom.base import log_context, metrics
from strongroom.base.config import Settings
from strongroom.base.errors import MissingTenantContext
from strongroom.drive.retention import EXPIRE_TRASH
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo, current_tenant
from strongroom.tenancy.jobs import Job, JobQueue, open_huey
from strongroom.tenancy.rollups import SCHEDULE_ROLL_UPS
from tests.conftest import Cast
from tests.metering.conftest import JobWatcher, run_consumer


class Calls:
    """What the test jobs saw when they ran."""

    def __init__(self) -> None:
        self.tenants: list[TenantInfo | None] = []
        self.log_tenants: list[str | None] = []
        self.arguments: list[dict[str, Any]] = []

    def tenant_job(self, _runtime: Runtime, tenant: TenantInfo, **arguments: Any) -> None:
        self.tenants.append(current_tenant.get())
        self.log_tenants.append(log_context.current().get("tenant"))
        self.arguments.append({"tenant": tenant, **arguments})

    def platform_job(self, _runtime: Runtime) -> None:
        self.tenants.append(current_tenant.get())


def rejected_count(job: str) -> float:
    labels = {"job": job, "outcome": "rejected"}
    return metrics.registry.get_sample_value("strongroom_jobs_total", labels) or 0.0


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def queue(runtime: Runtime, settings: Settings, calls: Calls) -> Iterator[JobQueue]:
    """A queue on the test's data directory with two test jobs, one per tenant and one not."""
    huey = open_huey(settings, runtime.keyring.master_key)
    queue = JobQueue(
        huey,
        runtime,
        [Job("test.tenant", calls.tenant_job), Job("test.platform", calls.platform_job, per_tenant=False)],
    )
    try:
        yield queue
    finally:
        queue.close()


@pytest.fixture
def watcher(queue: JobQueue) -> Iterator[JobWatcher]:
    with run_consumer(queue) as running:
        yield running


def test_enqueue_tenant_job_without_tenant_is_rejected(runtime: Runtime) -> None:
    with pytest.raises(MissingTenantContext) as raised:
        runtime.jobs.enqueue(EXPIRE_TRASH)

    assert "runs for one tenant" in str(raised.value)
    assert runtime.jobs.huey.pending_count() == 0


def test_enqueue_tenant_job_with_slug_is_rejected(runtime: Runtime, cast: Cast) -> None:
    with pytest.raises(MissingTenantContext):
        runtime.jobs.enqueue(EXPIRE_TRASH, cast.acme.slug)  # type: ignore[arg-type]

    assert runtime.jobs.huey.pending_count() == 0


def test_enqueue_platform_job_with_tenant_is_rejected(runtime: Runtime, cast: Cast) -> None:
    with pytest.raises(ValueError, match="takes no tenant id"):
        runtime.jobs.enqueue(SCHEDULE_ROLL_UPS, cast.acme.id)


def test_enqueue_unknown_job_is_rejected(runtime: Runtime) -> None:
    with pytest.raises(ValueError, match="no job is named 'nothing'"):
        runtime.jobs.enqueue("nothing")


def test_tenant_job_runs_bound_to_tenant(
    queue: JobQueue, watcher: JobWatcher, calls: Calls, cast: Cast
) -> None:
    task_id = queue.enqueue("test.tenant", cast.acme.id, size=3)

    outcome = watcher.wait(task_id)

    assert outcome == SIGNAL_COMPLETE
    assert calls.tenants == [cast.acme]
    assert calls.log_tenants == ["acme"]
    assert calls.arguments == [{"tenant": cast.acme, "size": 3}]


def test_tenant_job_id_names_its_tenant(queue: JobQueue, cast: Cast) -> None:
    task_id = queue.enqueue("test.tenant", cast.acme.id)

    assert task_id.startswith(f"tenants/{cast.acme.id}/jobs/test.tenant/")


def test_message_without_tenant_is_rejected(
    queue: JobQueue, watcher: JobWatcher, calls: Calls
) -> None:
    """A message that skipped `enqueue`, as another program could write it, does not run."""
    rejected_before = rejected_count("test.tenant")
    forged = queue._tasks["test.tenant"].s()  # bypasses the check on purpose
    queue.huey.enqueue(forged)

    outcome = watcher.wait(forged.id)

    assert outcome == SIGNAL_CANCELED
    assert calls.tenants == []
    assert rejected_count("test.tenant") == rejected_before + 1


def test_message_with_bad_signature_is_dropped(
    queue: JobQueue, watcher: JobWatcher, calls: Calls, cast: Cast
) -> None:
    """A message written as unsigned huey writes it, by a program that can reach the queue, is dropped."""
    unsigned = queue._tasks["test.tenant"].s(tenant_id=str(cast.globex.id))
    message = queue.huey._registry.create_message(unsigned)
    queue.huey.storage.enqueue(pickle.dumps(message), 0)
    after = queue.enqueue("test.tenant", cast.acme.id)

    watcher.wait(after)

    assert calls.tenants == [cast.acme]


def test_job_of_gone_tenant_is_skipped(
    queue: JobQueue, watcher: JobWatcher, calls: Calls, cast: Cast
) -> None:
    task_id = queue.enqueue("test.tenant", uuid.uuid4())

    outcome = watcher.wait(task_id)

    assert outcome == SIGNAL_COMPLETE
    assert calls.tenants == []


def test_platform_job_runs_without_tenant(
    queue: JobQueue, watcher: JobWatcher, calls: Calls
) -> None:
    task_id = queue.enqueue("test.platform")

    outcome = watcher.wait(task_id)

    assert outcome == SIGNAL_COMPLETE
    assert calls.tenants == [None]


def test_scheduled_job_per_tenant_is_rejected() -> None:
    with pytest.raises(ValueError, match="has a schedule but runs per tenant"):
        Job("test.bad", lambda *_: None, schedule=crontab(minute="0"))
