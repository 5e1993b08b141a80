"""`strongroom worker`: run the background jobs of the queue until stopped."""

from __future__ import annotations

from typing import Annotated

import typer

from strongroom.base.config import get_settings
from strongroom.base.logging import configure_logging, get_logger
from strongroom.interfaces.cli.main import app, reports_errors
from strongroom.runtime import build_runtime

log = get_logger(__name__)


@app.command()
@reports_errors
def worker(
    workers: Annotated[int, typer.Option(help="Jobs run at once, each in a thread.", min=1)] = 2,
    periodic: Annotated[
        bool,
        typer.Option(
            help="Also enqueue the scheduled jobs (hourly roll-up, daily trash expiry). Turn it "
            "off on all workers but one when several share a Redis queue, or they repeat them."
        ),
    ] = True,
) -> None:
    """Run background jobs (usage roll-ups, trash expiry) until SIGTERM or Ctrl-C.

    SIGTERM lets running jobs finish; a second SIGTERM or SIGINT stops at once.
    """
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    runtime = build_runtime(settings)
    consumer = runtime.jobs.consumer(workers=workers, periodic=periodic, graceful_signal="TERM")
    log.info(
        "worker_starting",
        queue="redis" if settings.redis_url else "sqlite",
        workers=workers,
        periodic=periodic,
    )
    try:
        consumer.run()
    finally:
        runtime.close()
    log.info("worker_stopped")
