"""The background duties of a server process, started and stopped with the application.

A thread writes the meter's counts to the catalog every
STRONGROOM_METERING_FLUSH_SECONDS and recomputes the catalog gauges every
STRONGROOM_METRICS_REFRESH_SECONDS, the first time at start. With `run_jobs`,
a huey consumer runs the background jobs in a thread as well, as the embedded
default does. Stopping lets a running job finish, then flushes once more, so
a server that stops cleanly loses no count.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from huey.consumer import Consumer
from sqlalchemy.exc import SQLAlchemyError

from strongroom.base.logging import get_logger
from strongroom.runtime import Runtime
from strongroom.tenancy.monitoring import refresh_gauges

log = get_logger(__name__)

# How long a stopping server waits for a running job. A job cut off is lost, and its schedule
# does its work again: the roll-up within two hours, trash expiry the next day.
JOB_SHUTDOWN_SECONDS = 30


class Housekeeping:
    def __init__(self, runtime: Runtime, run_jobs: bool = False) -> None:
        self.runtime = runtime
        self.consumer: Consumer | None = None
        if run_jobs:
            # One thread is enough for the jobs of a small site, and leaves the cores to requests.
            self.consumer = runtime.jobs.consumer(
                workers=1, in_thread=True, shutdown_timeout=JOB_SHUTDOWN_SECONDS
            )
        self.flush_seconds = runtime.settings.metering_flush_seconds
        self.refresh_seconds = runtime.settings.metrics_refresh_seconds
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="housekeeping", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if self.consumer is not None:
            self.consumer.start()

    def stop(self) -> None:
        """Stop the jobs and the thread, then flush what the meter counted since the last flush."""
        if self.consumer is not None:
            self.consumer.stop(graceful=True)
        self._stopping.set()
        self._thread.join(timeout=30)
        if not self.runtime.meter.flush():
            log.error(
                "metering_lost_at_stop",
                batches=self.runtime.meter.pending_batches(),
                advice="the catalog could not be written, so these counts are lost",
            )

    def _loop(self) -> None:
        now = time.monotonic()
        next_flush = now + self.flush_seconds
        next_refresh = now
        while not self._stopping.is_set():
            now = time.monotonic()
            if now >= next_refresh:
                self._run("gauge_refresh_failed", refresh_gauges, self.runtime.catalog)
                next_refresh = now + self.refresh_seconds
            if now >= next_flush:
                self._run("metering_flush_failed", self.runtime.meter.flush)
                next_flush = now + self.flush_seconds
            self._stopping.wait(max(min(next_flush, next_refresh) - time.monotonic(), 0))

    @staticmethod
    def _run(failure: str, duty: Callable[..., object], *arguments: object) -> None:
        """Run one duty, logging its failure, so that the thread lives on to the next one."""
        try:
            duty(*arguments)
        except SQLAlchemyError as exc:
            log.warning(failure, error=str(exc).splitlines()[0])
        except Exception:  # noqa: BLE001 - a bug must not stop metering for good
            log.exception(failure)
