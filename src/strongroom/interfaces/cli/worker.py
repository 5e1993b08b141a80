"""`strongroom worker`: run the background jobs of the queue until stopped."""

from __future__ import annotations

import gc
from typing import Annotated

import typer
from huey.consumer import Consumer
from prometheus_client import start_http_server

from strongroom.base import metrics
from strongroom.base.config import get_settings
from strongroom.base.logging import configure_logging, get_logger
from strongroom.interfaces.cli.main import app, reports_errors
from strongroom.runtime import build_runtime, freeze_start_up_objects

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
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve the worker's Prometheus metrics, such as failed jobs, at "
            "http://STRONGROOM_HOST:PORT/metrics.",
            min=1,
            max=65535,
        ),
    ] = None,
) -> None:
    """Run background jobs (usage roll-ups, trash expiry) until SIGTERM or Ctrl-C.

    SIGTERM lets running jobs finish; a second SIGTERM or SIGINT stops at once.
    """
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    runtime = build_runtime(settings)
    if metrics_port is not None:
        start_http_server(metrics_port, addr=settings.host, registry=metrics.registry)
    consumer = runtime.jobs.consumer(workers=workers, periodic=periodic, graceful_signal="TERM")
    log.info(
        "worker_starting",
        queue="redis" if settings.redis_url else "sqlite",
        workers=workers,
        periodic=periodic,
        metrics_port=metrics_port,
    )
    try:
        run_consumer(consumer)
    finally:
        runtime.close()
    log.info("worker_stopped")


def run_consumer(consumer: Consumer) -> None:
    """Run the consumer until it stops, with the objects made at start-up frozen meanwhile.

    Frozen, they are left out of the garbage collector's full passes, which
    pause every job thread as they pause every request of the server.
    """
    freeze_start_up_objects()
    try:
        consumer.run()
    finally:
        gc.unfreeze()
