"""Fixtures for webhooks: a real HTTP receiver on loopback, a job consumer, fast retries."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from strongroom.base.config import Settings
from strongroom.runtime import Runtime
from tests.conftest import Member
from tests.metering.conftest import JobWatcher, run_consumer

WAIT_SECONDS = 30


@dataclass(frozen=True)
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A threaded HTTP server on 127.0.0.1 that records every POST.

    It responds with the statuses given to `respond`, in order, then with
    `default_status`.
    """

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.default_status = 204
        self._next: list[int] = []
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        # `shutdown` returns only once the serving loop reads its flag, which the loop checks
        # every poll interval: the default of 0.5 s added about 0.25 s to each test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def respond(self, *statuses: int) -> None:
        with self._changed:
            self._next.extend(statuses)

    def received_at(self, path: str) -> list[Received]:
        with self._changed:
            return [request for request in self.requests if request.path == path]

    def wait_for(self, path: str, count: int, timeout: float = WAIT_SECONDS) -> list[Received]:
        """Return the requests to `path` once there are at least `count` of them."""
        with self._changed:
            arrived = self._changed.wait_for(
                lambda: len([r for r in self.requests if r.path == path]) >= count, timeout=timeout
            )
        found = self.received_at(path)
        assert arrived, f"{len(found)} requests reached {path} within {timeout} s; expected {count}"
        return found

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _record(self, request: Received) -> int:
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()
            return self._next.pop(0) if self._next else self.default_status

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                status = receiver._record(Received(self.path, headers, body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings, with retries a fraction of a second apart and loopback allowed."""
    return settings.model_copy(
        update={
            "webhook_retry_delays": "0.1,0.1",
            "webhook_block_private_addresses": False,
            "webhook_timeout_seconds": 5.0,
        }
    )


@pytest.fixture
def jobs(runtime: Runtime) -> Iterator[JobWatcher]:
    """A consumer of the runtime's job queue, running while the test runs."""
    with run_consumer(runtime.jobs) as watcher:
        yield watcher


# Calls ---------------------------------------------------------------------------------


def call(client: httpx.Client, member: Member, method: str, path: str, **kwargs: Any) -> Any:
    response = client.request(method, member.url(path), headers=member.headers, **kwargs)
    assert response.is_success, f"{method} {path}: {response.status_code} {response.text}"
    return response.json() if response.content else None


def subscribe(
    client: httpx.Client, admin: Member, url: str, events: list[str] | None = None
) -> dict[str, Any]:
    events = events or [
        "file.created",
        "file.updated",
        "file.deleted",
        "share.created",
        "link.created",
    ]
    response = client.post(
        admin.url("webhooks"), headers=admin.headers, json={"url": url, "events": events}
    )
    assert response.status_code == 201, response.text
    return response.json()


def put_file(client: httpx.Client, member: Member, path: str, body: bytes) -> dict[str, Any]:
    response = client.put(member.url(f"files/{path}"), headers=member.headers, content=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


def wait_for_deliveries(
    client: httpx.Client,
    admin: Member,
    webhook_id: str,
    state: str,
    count: int = 1,
    timeout: float = WAIT_SECONDS,
) -> list[dict[str, Any]]:
    """Return the webhook's deliveries in `state` once there are at least `count` of them."""
    deadline = time.monotonic() + timeout
    while True:
        found = call(client, admin, "GET", f"webhooks/{webhook_id}/deliveries?state={state}")[
            "items"
        ]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            everything = call(client, admin, "GET", f"webhooks/{webhook_id}/deliveries")["items"]
            raise AssertionError(f"no {count} {state} deliveries within {timeout} s: {everything}")
        time.sleep(0.05)
