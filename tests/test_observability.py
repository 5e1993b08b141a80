"""Health probes, Prometheus metrics and the JSON request log."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import json
import os
import signal
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from strongroom.base import log_context
from strongroom.base.logging import access_logger, configure_logging
from strongroom.interfaces.api.app import create_app, lifespan
from strongroom.interfaces.cli.worker import run_consumer
from strongroom.runtime import Runtime, all_jobs
from strongroom.tenancy.jobs import Job, JobQueue, open_huey
from tests.conftest import Cast
from tests.services.strongroom import StrongroomProcess


def test_healthz_is_ok(client: httpx.Client) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_checks_database_and_blobs(client: httpx.Client) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "blob_store": "ok"}


def test_metrics_count_requests_by_route(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    client.get(alice.url("folders/"), headers=alice.headers)
    client.get(alice.url("folders/"))

    text = client.get("/metrics").text

    assert 'route="/api/v1/folders/{path:path}",status="200"' in text
    assert 'route="/api/v1/folders/{path:path}",status="401"' in text
    assert "strongroom_http_request_duration_seconds_bucket" in text


def test_metrics_name_tenants_only_as_heaviest(client: httpx.Client, cast: Cast) -> None:
    """Only the bounded heaviest-tenant gauges label a tenant, and nothing here refreshed them."""
    for member in (cast.acme_member, cast.globex_member):
        client.get(member.url("folders/"), headers=member.headers)

    text = client.get("/metrics").text

    assert "acme" not in text
    assert "globex" not in text
    labelled = [line for line in text.splitlines() if "tenant=" in line]
    assert all(line.startswith("strongroom_heaviest_tenant_") for line in labelled)


def test_metrics_not_under_tenant_url(client: httpx.Client, cast: Cast) -> None:
    by_path = client.get("/t/acme/metrics")
    by_host = client.get("/metrics", headers={"Host": "acme.strongroom.test"})

    assert by_path.status_code == 404
    assert by_host.status_code == 404
    assert "strongroom_" not in by_path.text + by_host.text


def test_metrics_token_required_when_set(
    client: httpx.Client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime.settings, "metrics_token", "scrape-token-0123456789")

    missing = client.get("/metrics")
    wrong = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-9876543210"})
    right = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"})

    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert "strongroom_" not in missing.text + wrong.text
    assert right.status_code == 200
    assert "strongroom_http_requests_total" in right.text


def test_response_carries_request_id(client: httpx.Client) -> None:
    with_proxy_id = client.get("/healthz", headers={"X-Request-ID": "trace-1234abcd"})
    without_id = client.get("/healthz")

    assert with_proxy_id.headers["x-request-id"] == "trace-1234abcd"
    assert len(without_id.headers["x-request-id"]) == 32


def test_request_log_is_json_with_ids(strongroom_process: StrongroomProcess) -> None:
    server = strongroom_process
    server.env["STRONGROOM_LOG_LEVEL"] = "info"
    token = server.make_member("acme", "alice@acme.test")
    server.start()

    httpx.get(
        f"{server.url}/t/acme/api/v1/folders/",
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": "probe-5678efgh"},
    )
    server.stop()

    events = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
    requests = [event for event in events if event.get("request_id") == "probe-5678efgh"]
    assert requests, "no log line carries the request id"
    access = requests[-1]
    assert access["event"] == "request"
    assert access["logger"] == "strongroom.access"
    assert access["level"] == "info"
    assert access["timestamp"].endswith("Z")
    assert access["tenant"] == "acme"
    assert access["status"] == 200
    assert access["actor"].endswith("@acme")
    assert "alice@acme.test" not in server.log_path.read_text()


def log_lines(server: StrongroomProcess) -> list[str]:
    return [line for line in server.log_path.read_text().splitlines() if line.strip()]


def parses_as_json(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def test_invalid_http_request_logs_json_line(strongroom_process: StrongroomProcess) -> None:
    server = strongroom_process
    server.env["STRONGROOM_LOG_FORMAT"] = "json"
    server.env["STRONGROOM_LOG_LEVEL"] = "info"
    server.start()

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(b"NOT HTTP AT ALL\x00\r\n\r\n")
        reply = raw.recv(4096)
    server.stop()

    assert reply.startswith(b"HTTP/1.1 400")
    lines = log_lines(server)
    assert [line for line in lines if not parses_as_json(line)] == []
    events = [json.loads(line)["event"] for line in lines]
    assert "Invalid HTTP request received." in events


def test_bind_failure_logs_json_lines(strongroom_process: StrongroomProcess) -> None:
    server = strongroom_process
    server.env["STRONGROOM_LOG_FORMAT"] = "json"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()

        result = server.cli("serve", "--port", str(taken.getsockname()[1]), "--no-demo")

    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert [line for line in lines if not parses_as_json(line)] == []
    errors = [json.loads(line) for line in lines if json.loads(line)["level"] == "error"]
    assert any("address already in use" in json.dumps(error).lower() for error in errors)


def test_start_up_objects_are_frozen_while_serving(runtime: Runtime) -> None:
    app = create_app(runtime)
    counts = []

    async def serve_briefly() -> None:
        async with lifespan(app):
            counts.append(gc.get_freeze_count())
        counts.append(gc.get_freeze_count())

    asyncio.run(serve_briefly())

    # The routes, models and table metadata alone are tens of thousands of objects.
    assert counts[0] > 10_000
    assert counts[1] == 0


def access_line_in(log_format: str, level: str, capsys: pytest.CaptureFixture[str]) -> str:
    configure_logging(log_format, level)
    try:
        log_context.bind(request_id="probe-0001", tenant="acme")
        access_logger().info("request", method="GET", route="/api/v1/x", status=204)
    finally:
        log_context.clear()
        configure_logging("json", "warning")  # as tests/conftest.py sets it
    return capsys.readouterr().err


def test_access_line_json_has_every_key(capsys: pytest.CaptureFixture[str]) -> None:
    line = json.loads(access_line_in("json", "info", capsys))

    assert line["event"] == "request"
    assert line["logger"] == "strongroom.access"
    assert line["level"] == "info"
    assert line["request_id"] == "probe-0001"
    assert line["tenant"] == "acme"
    assert line["status"] == 204
    assert dt.datetime.fromisoformat(line["timestamp"]).utcoffset() == dt.timedelta(0)


def test_access_line_console_has_fields(capsys: pytest.CaptureFixture[str]) -> None:
    line = access_line_in("console", "info", capsys)

    assert "request" in line
    assert "strongroom.access" in line
    assert "request_id=probe-0001" in line
    assert "status=204" in line


def test_access_line_dropped_above_info(capsys: pytest.CaptureFixture[str]) -> None:
    assert access_line_in("json", "warning", capsys) == ""
    assert access_line_in("console", "warning", capsys) == ""
# Stops the test's worker if its job never ran, so that a failure cannot hang the test run.
WORKER_DEADLINE_SECONDS = 60


@pytest.fixture
def restored_signals() -> Iterator[None]:
    """Put back the handlers that the huey consumer replaces in the main thread."""
    signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    saved = {number: signal.getsignal(number) for number in signals}
    try:
        yield
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)


def test_start_up_objects_are_frozen_while_working(runtime: Runtime, restored_signals: None) -> None:
    counts = []

    def read_freeze_count(_runtime: Runtime) -> None:
        counts.append(gc.get_freeze_count())
        # SIGTERM stops `strongroom worker` gracefully, as an operator's would.
        os.kill(os.getpid(), signal.SIGTERM)

    probe = Job("tests.read_freeze_count", read_freeze_count, per_tenant=False, retries=0)
    queue = JobQueue(open_huey(runtime.settings, runtime.keyring.master_key), runtime, [*all_jobs(), probe])
    consumer = queue.consumer(workers=1, periodic=False, graceful_signal="TERM", initial_delay=0.01)
    queue.enqueue(probe)
    deadline = threading.Timer(WORKER_DEADLINE_SECONDS, os.kill, (os.getpid(), signal.SIGTERM))
    deadline.start()
    try:
        run_consumer(consumer)
    finally:
        deadline.cancel()
        queue.close()

    # The models, jobs and table metadata alone are tens of thousands of objects.
    assert counts and counts[0] > 10_000
    assert gc.get_freeze_count() == 0
