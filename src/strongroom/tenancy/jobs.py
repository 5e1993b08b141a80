"""Background jobs on huey, each tenant job bound to exactly one tenant.

A job is declared once as a `Job` and run by a `JobQueue`. A tenant job
(`per_tenant=True`, the default) can be enqueued only with a tenant id, and
the consumer runs it only when its message carries one. The consumer then
loads the tenant from the catalog and runs the job with the tenant bound to
the context and the log fields, as a request would be. A message without a
tenant is rejected and never retried. A platform job works across tenants,
typically to enqueue one tenant job per tenant, and may run on a schedule (a
huey `crontab`).

The queue is a SQLite file in the data directory by default, which only
processes on this host can share, or Redis when STRONGROOM_REDIS_URL is set.
Messages are pickled, as huey does, and signed with HMAC-SHA256 under a key
derived from the master key. The consumer drops a message whose signature
fails before unpickling it, so a program that can write to the queue's
storage cannot make a worker run code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from huey import RedisHuey, SqliteHuey
from huey.api import Huey, TaskWrapper
from huey.consumer import Consumer
from huey.exceptions import CancelExecution
from huey.serializer import Serializer

from strongroom.base import log_context, metrics
from strongroom.base.config import Settings
from strongroom.base.errors import MissingTenantContext, ServiceUnavailable, TenantNotFound
from strongroom.base.logging import get_logger
from strongroom.base.scoping import tenant_scoped_key
from strongroom.storage.crypto import derive_key
from strongroom.storage.db import create_private_file
from strongroom.tenancy.context import MIGRATING, PROVISIONING, TenantInfo, bound_tenant

if TYPE_CHECKING:
    from strongroom.runtime import Runtime

log = get_logger(__name__)

QUEUE_NAME = "strongroom"
QUEUE_FILE = "jobs.db"
SIGNING_PURPOSE = b"strongroom/job-signatures/v1"
SIGNATURE_BYTES = hashlib.sha256().digest_size
# Statuses whose tenants have no store to work on: still being made, or being removed.
NO_STORE = (PROVISIONING, "deleting")


@dataclass(frozen=True)
class Job:
    """A kind of background job.

    `run` takes the runtime, then for a tenant job the tenant, then the
    keyword arguments given at enqueueing, which must be picklable.
    `schedule` makes a platform job periodic: a function of a UTC datetime
    that returns True on the minutes it should run, such as huey's `crontab`.
    """

    name: str
    run: Callable[..., Any]
    per_tenant: bool = True
    schedule: Callable[[dt.datetime], bool] | None = None
    retries: int = 3
    retry_delay: float = 60.0

    def __post_init__(self) -> None:
        if self.schedule is not None and self.per_tenant:
            raise ValueError(
                f"job {self.name!r} has a schedule but runs per tenant; schedule a platform job "
                "that enqueues it for each tenant instead"
            )


class SignedSerializer(Serializer):
    """Pickle messages behind an HMAC-SHA256 signature, and check it before unpickling."""

    def __init__(self, key: bytes) -> None:
        super().__init__()
        self._key = key

    def _serialize(self, data: Any) -> bytes:
        body = super()._serialize(data)
        return self._sign(body) + body

    def _deserialize(self, data: bytes) -> Any:
        signature, body = data[:SIGNATURE_BYTES], data[SIGNATURE_BYTES:]
        if not hmac.compare_digest(signature, self._sign(body)):
            raise ValueError(
                "a job message failed its signature check, so it was dropped; it was not "
                "written by a Strongroom process that has this master key"
            )
        return super()._deserialize(body)

    def _sign(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()


def open_huey(settings: Settings, master_key: bytes) -> Huey:
    """Open the job queue the settings name: Redis if configured, else the SQLite file."""
    serializer = SignedSerializer(derive_key(master_key, SIGNING_PURPOSE))
    # Results are not stored, because jobs report through logs and metrics and stored
    # results would pile up unread.
    if settings.redis_url:
        return RedisHuey(QUEUE_NAME, url=settings.redis_url, serializer=serializer, results=False)
    path = settings.data_dir.resolve() / QUEUE_FILE
    create_private_file(str(path))
    return SqliteHuey(QUEUE_NAME, filename=str(path), serializer=serializer, results=False)


class ThreadConsumer(Consumer):
    """A huey consumer whose threads run inside a server, which keeps its own signal handlers."""

    def _set_signal_handlers(self) -> None:
        pass


class JobQueue:
    """Enqueues jobs and registers them on huey, so that a consumer of `huey` runs them."""

    def __init__(self, huey: Huey, runtime: Runtime, jobs: Iterable[Job]) -> None:
        self.huey = huey
        self.runtime = runtime
        self.jobs: dict[str, Job] = {}
        self._tasks: dict[str, TaskWrapper] = {}
        for job in jobs:
            self._register(job)

    def enqueue(
        self,
        job: Job | str,
        tenant_id: uuid.UUID | None = None,
        *,
        delay: float | None = None,
        **arguments: Any,
    ) -> str:
        """Put a job on the queue and return its task id; with `delay`, it runs that many seconds later.

        Raises MissingTenantContext for a tenant job without a tenant id, and
        ValueError for a platform job given one.
        """
        job = self._job(job)
        if job.per_tenant:
            if not isinstance(tenant_id, uuid.UUID):
                raise MissingTenantContext(
                    f"job {job.name!r} runs for one tenant, and no tenant id was given; pass "
                    "the tenant's id as tenant_id"
                )
            task_id = tenant_scoped_key(tenant_id, "jobs", job.name, uuid.uuid4().hex)
            arguments["tenant_id"] = str(tenant_id)
        elif tenant_id is not None:
            raise ValueError(f"job {job.name!r} works across tenants and takes no tenant id")
        else:
            task_id = uuid.uuid4().hex
        task = self._tasks[job.name].s(id=task_id, delay=delay, **arguments)
        self.huey.enqueue(task)
        return task_id

    def consumer(
        self, workers: int = 1, periodic: bool = True, in_thread: bool = False, **options: Any
    ) -> Consumer:
        """Return a consumer of this queue, with `in_thread` for one inside a server process."""
        consumer_class = ThreadConsumer if in_thread else Consumer
        return consumer_class(self.huey, workers=workers, periodic=periodic, **options)

    def close(self) -> None:
        self.huey.storage.close()

    # Registration and running -----------------------------------------------------------

    def _job(self, job: Job | str) -> Job:
        name = job if isinstance(job, str) else job.name
        if name not in self.jobs:
            raise ValueError(f"no job is named {name!r}; known jobs: {', '.join(sorted(self.jobs))}")
        return self.jobs[name]

    def _register(self, job: Job) -> None:
        if job.name in self.jobs:
            raise ValueError(f"two jobs are named {job.name!r}")
        options: dict[str, Any] = {
            "name": job.name,
            "retries": job.retries,
            "retry_delay": job.retry_delay,
            "context": True,
        }

        def run(task: Any, **arguments: Any) -> None:
            self._run(job, task.id, arguments)

        if job.schedule is not None:
            wrapper = self.huey.periodic_task(job.schedule, **options)(run)
        else:
            wrapper = self.huey.task(**options)(run)
        self.jobs[job.name] = job
        self._tasks[job.name] = wrapper

    def _run(self, job: Job, task_id: str, arguments: dict[str, Any]) -> None:
        with log_context.bound(job=job.name, job_id=task_id):
            try:
                if job.per_tenant:
                    self._run_for_tenant(job, arguments)
                else:
                    job.run(self.runtime, **arguments)
            except CancelExecution:
                metrics.jobs.labels(job.name, "rejected").inc()
                raise
            except Exception as exc:
                metrics.jobs.labels(job.name, "failed").inc()
                log.error("job_failed", error=str(exc), error_type=type(exc).__name__)
                raise
        metrics.jobs.labels(job.name, "done").inc()

    def _run_for_tenant(self, job: Job, arguments: dict[str, Any]) -> None:
        tenant = self._tenant_of(job, arguments.pop("tenant_id", None))
        if tenant is None:
            return
        with bound_tenant(tenant), log_context.bound(tenant=tenant.slug):
            job.run(self.runtime, tenant, **arguments)

    def _tenant_of(self, job: Job, message_tenant_id: object) -> TenantInfo | None:
        """Return the job's tenant, or None when it is gone; reject a message without one."""
        try:
            tenant_id = uuid.UUID(str(message_tenant_id)) if message_tenant_id else None
        except ValueError:
            tenant_id = None
        if tenant_id is None:
            log.error(
                "job_rejected",
                reason="the message carries no valid tenant id",
                tenant_id=repr(message_tenant_id),
            )
            raise CancelExecution(retry=False) from MissingTenantContext(
                f"job {job.name!r} runs for one tenant, and its message named none"
            )
        try:
            tenant = self.runtime.catalog.get_tenant_by_id(tenant_id)
        except TenantNotFound:
            log.info("job_skipped", reason="the tenant no longer exists", tenant_id=str(tenant_id))
            return None
        if tenant.status in NO_STORE:
            log.info("job_skipped", reason=f"the tenant is {tenant.status}", tenant=tenant.slug)
            return None
        if tenant.status == MIGRATING:
            raise ServiceUnavailable(
                f"tenant {tenant.slug!r} is being migrated; the job is retried after "
                f"{job.retry_delay:g} seconds"
            )
        return tenant
