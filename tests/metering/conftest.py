"""Fixtures for metering, jobs and monitoring: a job consumer in a thread, and clean gauges."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from huey.api import Huey
from huey.consumer import Scheduler
from huey.signals import SIGNAL_CANCELED, SIGNAL_COMPLETE, SIGNAL_ERROR, SIGNAL_RETRYING

from strongroom.base import metrics
from strongroom.runtime import Runtime
from strongroom.tenancy.jobs import JobQueue, ThreadConsumer
from strongroom.tenancy.metering import HOUR_SECONDS, Batch, write_batch
from strongroom.tenancy.monitoring import replace_series
from strongroom.tenancy.rollups import roll_up_hour
from tests.conftest import Cast

WAIT_SECONDS = 60
# How often the tests' consumer moves delayed tasks that are due onto the queue.
SCHEDULE_CHECK_SECONDS = 0.02


class JobWatcher:
    """Records how each task of a queue ended, as huey reports it through its signals."""

    def __init__(self, huey: Huey) -> None:
        self.outcomes: dict[str, str] = {}
        self._changed = threading.Condition()
        huey.signal(SIGNAL_COMPLETE, SIGNAL_ERROR, SIGNAL_CANCELED, SIGNAL_RETRYING)(self._record)

    def _record(self, signal: str, task: Any, *_args: Any) -> None:
        with self._changed:
            self.outcomes[task.id] = signal
            self._changed.notify_all()

    def wait(self, task_id: str, timeout: float = WAIT_SECONDS) -> str:
        """Return the signal that ended the task: complete, error or canceled."""
        with self._changed:
            finished = self._changed.wait_for(
                lambda: self.outcomes.get(task_id) in (SIGNAL_COMPLETE, SIGNAL_ERROR, SIGNAL_CANCELED),
                timeout=timeout,
            )
        if not finished:
            raise AssertionError(f"task {task_id} did not finish within {timeout} seconds")
        return self.outcomes[task_id]


class QuickScheduler(Scheduler):
    """huey's scheduler, checking for due delayed tasks every few milliseconds.

    huey 3.5 clamps its interval to at least one second, so a retry delayed by 0.1 s
    waited up to a second for the next check. The tests delay tasks by fractions
    of a second (webhook retries) and wait for them to run.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.interval = SCHEDULE_CHECK_SECONDS


class QuickConsumer(ThreadConsumer):
    """The server's in-process consumer, with the quick scheduler."""

    scheduler_class = QuickScheduler


@contextmanager
def run_consumer(queue: JobQueue) -> Iterator[JobWatcher]:
    """Run a real huey consumer of the queue in threads, polling often, until the test ends."""
    watcher = JobWatcher(queue.huey)
    consumer = QuickConsumer(
        queue.huey, workers=1, periodic=False, initial_delay=0.01, max_delay=0.1
    )
    consumer.start()
    try:
        yield watcher
    finally:
        consumer.stop(graceful=True)


@pytest.fixture
def jobs(runtime: Runtime) -> Iterator[JobWatcher]:
    """A consumer of the runtime's job queue, running while the test runs."""
    with run_consumer(runtime.jobs) as watcher:
        yield watcher


@pytest.fixture(autouse=True)
def no_heaviest_tenants() -> Iterator[None]:
    """Leave no tenant label behind in the process-wide registry for later tests to see."""
    yield
    for gauge in (metrics.heaviest_storage, metrics.heaviest_requests, metrics.heaviest_transfer):
        replace_series(gauge, {})


# A month of metered use -----------------------------------------------------------------

NOVEMBER = dt.datetime(2026, 11, 5, 10, tzinfo=dt.UTC)
DECEMBER = dt.datetime(2026, 12, 1, 0, tzinfo=dt.UTC)


def epoch_hour(moment: dt.datetime) -> int:
    return int(moment.timestamp()) // HOUR_SECONDS


def meter_acme(
    runtime: Runtime, cast: Cast, hour: dt.datetime, counts: list[int], users: list[uuid.UUID]
) -> None:
    """Write one batch of acme's counts and active users in `hour`."""
    batch = Batch(
        counts={(cast.acme.id, epoch_hour(hour)): counts},
        users=[(cast.acme.id, epoch_hour(hour), user) for user in users],
    )
    write_batch(runtime.engine, batch)


@pytest.fixture
def metered(runtime: Runtime, cast: Cast) -> Cast:
    """Acme's use in two hours of November and one of December; globex used nothing."""
    alice, admin = cast.acme_member.user_id, cast.acme_admin.user_id
    meter_acme(runtime, cast, NOVEMBER, [10, 1000, 2000], [alice])
    meter_acme(runtime, cast, NOVEMBER + dt.timedelta(hours=1), [5, 0, 500], [alice, admin])
    meter_acme(runtime, cast, DECEMBER, [7, 7, 7], [admin])
    roll_up_hour(runtime.engine, cast.acme.id, NOVEMBER, 4000)
    roll_up_hour(runtime.engine, cast.acme.id, NOVEMBER + dt.timedelta(hours=1), 6000)
    roll_up_hour(runtime.engine, cast.acme.id, DECEMBER, 9000)
    return cast
