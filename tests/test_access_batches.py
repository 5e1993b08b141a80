"""Access lines written in batches: when they wait, when they go out, and that the log keeps its order."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import subprocess
import time

import httpx
import pytest

from strongroom.base import logging as strongroom_logging
from strongroom.base.logging import (
    ACCESS_FLUSH_SECONDS,
    MAX_WAITING_ACCESS_LINES,
    _LineBatchingHandler,
)
from tests.services.strongroom import STRONGROOM, StrongroomProcess


@pytest.fixture
def stream() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def handler(stream: io.StringIO) -> _LineBatchingHandler:
    handler = _LineBatchingHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def record(message: str) -> logging.LogRecord:
    return logging.makeLogRecord({"msg": message, "levelno": logging.WARNING})


def test_line_without_loop_written_at_once(handler: _LineBatchingHandler, stream: io.StringIO) -> None:
    handler.write_later("one")

    assert stream.getvalue() == "one\n"


def test_lines_on_loop_wait_for_timer(handler: _LineBatchingHandler, stream: io.StringIO) -> None:
    async def serve() -> tuple[str, str]:
        handler.write_later("one")
        handler.write_later("two")
        before = stream.getvalue()
        await asyncio.sleep(ACCESS_FLUSH_SECONDS * 4)
        return before, stream.getvalue()

    before, after = asyncio.run(serve())

    assert before == ""
    assert after == "one\ntwo\n"


def test_other_record_writes_waiting_first(handler: _LineBatchingHandler, stream: io.StringIO) -> None:
    async def serve() -> str:
        handler.write_later("access one")
        handler.handle(record("an error"))
        handler.write_later("access two")
        return stream.getvalue()

    written = asyncio.run(serve())

    assert written == "access one\nan error\n"


def test_full_batch_written_without_timer(handler: _LineBatchingHandler, stream: io.StringIO) -> None:
    async def serve() -> str:
        for number in range(MAX_WAITING_ACCESS_LINES + 1):
            handler.write_later(f"line {number}")
        return stream.getvalue()

    written = asyncio.run(serve()).splitlines()

    assert len(written) == MAX_WAITING_ACCESS_LINES
    assert written[0] == "line 0"
    assert written[-1] == f"line {MAX_WAITING_ACCESS_LINES - 1}"


def test_flush_writes_waiting_lines(handler: _LineBatchingHandler, stream: io.StringIO) -> None:
    async def serve() -> str:
        handler.write_later("one")
        handler.flush()
        return stream.getvalue()

    assert asyncio.run(serve()) == "one\n"


def test_stopped_loop_timer_replaced(handler: _LineBatchingHandler, stream: io.StringIO) -> None:
    async def first_server() -> None:
        handler.write_later("from the first loop")

    async def second_server() -> str:
        handler.write_later("from the second loop")
        await asyncio.sleep(ACCESS_FLUSH_SECONDS * 4)
        return stream.getvalue()

    # The first loop ends before its timer fires, so its line waits for the second loop's timer.
    asyncio.run(first_server())
    written = asyncio.run(second_server())

    assert written == "from the first loop\nfrom the second loop\n"


def test_closed_stream_does_not_raise(
    handler: _LineBatchingHandler, stream: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    stream.close()

    handler.write_later("lost")

    assert "Logging error" in capsys.readouterr().err


def test_reconfigure_writes_waiting_lines(capsys: pytest.CaptureFixture[str]) -> None:
    async def serve() -> None:
        strongroom_logging.configure_logging("json", "info")
        strongroom_logging.access_logger().info("request", status=204)
        strongroom_logging.configure_logging("json", "warning")  # as tests/conftest.py sets it

    asyncio.run(serve())

    assert '"status":204' in capsys.readouterr().err


def test_missing_stream_does_not_raise(handler: _LineBatchingHandler) -> None:
    # With file descriptor 2 closed at start, sys.stderr and so the handler's stream are None.
    handler.stream = None

    async def serve() -> None:
        handler.write_later("lost")
        handler.handle(record("an error"))
        handler.flush()

    asyncio.run(serve())


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_server_without_stderr_serves(
    strongroom_process: StrongroomProcess, log_format: str
) -> None:
    server = strongroom_process
    token = server.make_member("acme", "alice@acme.test")
    server.env["STRONGROOM_LOG_LEVEL"] = "info"
    server.env["STRONGROOM_LOG_FORMAT"] = log_format
    headers = {"Authorization": f"Bearer {token}"}
    api = f"{server.url}/t/acme/api/v1"

    with server.log_path.open("ab") as log:
        # Started the way `strongroom serve 2>&-` starts it: no standard error at all.
        server.process = subprocess.Popen(
            [str(STRONGROOM), "serve", "--port", str(server.port), "--no-demo"],
            env=server.env,
            stdout=log,
            preexec_fn=lambda: os.close(2),  # noqa: PLW1509 - the child runs no threads yet
        )
    wait_for_health(server)
    with httpx.Client(timeout=30) as client:
        listings = [client.get(f"{api}/folders/", headers=headers) for _ in range(5)]
        uploads = [
            client.put(f"{api}/files/f{number}.txt", headers=headers, content=b"text")
            for number in range(5)
        ]

    assert [response.status_code for response in listings] == [200] * 5
    assert [response.status_code for response in uploads] == [201] * 5


def wait_for_health(server: StrongroomProcess) -> None:
    assert server.process is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.process.poll() is None, "the server exited at start"
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("the server did not answer /healthz within 30 seconds")


def test_sigterm_keeps_every_access_line(strongroom_process: StrongroomProcess) -> None:
    server = strongroom_process
    token = server.make_member("acme", "alice@acme.test")
    server.env["STRONGROOM_LOG_LEVEL"] = "info"
    server.start()
    headers = {"Authorization": f"Bearer {token}"}
    listing_url = f"{server.url}/t/acme/api/v1/folders/"

    with httpx.Client(timeout=30) as client:
        statuses = [client.get(listing_url, headers=headers).status_code for _ in range(200)]
    # Stopped right after the last response, while its access lines still wait for their batch.
    server.stop()

    lines = server.log_path.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    listings = [
        record
        for record in records
        if record["event"] == "request" and record["route"] == "/api/v1/folders/{path:path}"
    ]
    assert statuses == [200] * 200
    assert len(listings) == 200


def test_sigterm_closes_runtime_then_dies(strongroom_process: StrongroomProcess) -> None:
    server = strongroom_process
    server.env["STRONGROOM_LOG_LEVEL"] = "info"
    server.start()
    assert server.process is not None

    server.stop()

    events = [json.loads(line)["event"] for line in server.log_path.read_text().splitlines()]
    # The runtime closed (queued mails sent, connections closed) before the process ended.
    assert "server_stopped" in events
    # The process still ends by the signal, as a supervisor expects of a clean stop.
    assert server.process.returncode == -signal.SIGTERM
