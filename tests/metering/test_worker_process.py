"""Jobs run by real processes: `strongroom worker`, and `strongroom serve` on the embedded default."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from strongroom.base.config import load_settings
from strongroom.runtime import Runtime, build_runtime
from strongroom.tenancy.rollups import ROLL_UP
from tests.metering.readings import hour_rows
from tests.services.strongroom import STRONGROOM, StrongroomProcess, free_port

HOUR = dt.datetime(2026, 11, 5, 10, tzinfo=dt.UTC)
WAIT_SECONDS = 60


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def process(data_dir: Path) -> Iterator[StrongroomProcess]:
    server = StrongroomProcess(data_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def beside(process: StrongroomProcess, data_dir: Path) -> Iterator[Runtime]:
    """A runtime in the test process on the same data directory, to enqueue and read back."""
    created = process.cli("tenant", "create", "acme")
    assert created.returncode == 0, created.stderr
    runtime = build_runtime(load_settings(data_dir=data_dir))
    try:
        yield runtime
    finally:
        runtime.close()


def wait_for_roll_up(runtime: Runtime, slug: str) -> bool:
    """Return True once the tenant's HOUR has been rolled up, or False after WAIT_SECONDS."""
    tenant = runtime.catalog.get_tenant(slug)
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        row = hour_rows(runtime.engine, tenant.id).get(HOUR)
        if row is not None and row.rolled_up_at is not None:
            return True
        time.sleep(0.2)
    return False


def test_worker_command_runs_enqueued_job(
    process: StrongroomProcess, beside: Runtime, data_dir: Path
) -> None:
    tenant = beside.catalog.get_tenant("acme")
    beside.jobs.enqueue(ROLL_UP, tenant.id, hours=[HOUR.isoformat()])
    log_path = data_dir.parent / "worker.log"
    port = free_port()
    command = [str(STRONGROOM), "worker", "--workers", "1", "--no-periodic"]
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [*command, "--metrics-port", str(port)],
            env=process.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        rolled_up = wait_for_roll_up(beside, "acme")
        exposed = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        worker.send_signal(signal.SIGTERM)
        status = worker.wait(timeout=30)

    assert rolled_up, log_path.read_text()
    assert 'strongroom_jobs_total{job="usage.roll_up",outcome="done"} 1.0' in exposed
    assert status == 0, log_path.read_text()


def gauges_shown(process: StrongroomProcess) -> str:
    """Return /metrics once it shows the tenant gauge, refreshed in the background at start."""
    line = 'strongroom_tenants{isolation="shared",plan="default",status="active"} 1.0'
    deadline = time.monotonic() + WAIT_SECONDS
    exposed = httpx.get(f"{process.url}/metrics").text
    while line not in exposed and time.monotonic() < deadline:
        time.sleep(0.2)
        exposed = httpx.get(f"{process.url}/metrics").text
    return exposed


def test_serve_runs_background_duties(process: StrongroomProcess, beside: Runtime) -> None:
    """On the embedded default, one process serves, runs the jobs and refreshes the gauges."""
    tenant = beside.catalog.get_tenant("acme")
    process.start()

    beside.jobs.enqueue(ROLL_UP, tenant.id, hours=[HOUR.isoformat()])

    assert wait_for_roll_up(beside, "acme"), process.log_path.read_text()
    assert 'status="active"} 1.0' in gauges_shown(process)
