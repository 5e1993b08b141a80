"""The outermost ASGI layer: request id, tenant resolution, the tenant's rate limit, log context
and metrics.

It runs before routing, so that every route below it, and every log line,
gets the request id and the resolved tenant. For `/t/{slug}/...` it strips
the prefix into `root_path`, so one set of routes serves both the host and
the path form of a tenant's base URL.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strongroom.base import log_context, metrics
from strongroom.base.errors import (
    SERVER_FAULT_HEADER,
    ServiceUnavailable,
    StrongroomError,
    TenantNotFound,
    TenantSuspended,
)
from strongroom.base.logging import access_logger, get_logger
from strongroom.interfaces.api.problems import error_response
from strongroom.runtime import Runtime
from strongroom.tenancy.context import (
    ACTIVE,
    MIGRATING,
    MOVING,
    PROVISIONING,
    SUSPENDED,
    TenantInfo,
    current_tenant,
)
from strongroom.tenancy.resolution import resolve
from strongroom.tenancy.upgrades import store_is_current

log = get_logger(__name__)

REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{8,64}")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        request_id = _request_id(scope)
        log_context.clear()
        log_context.bind(request_id=request_id)
        outcome = Outcome()

        async def send_with_context(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcome.status = message["status"]
                headers = message.get("headers", [])
                if outcome.status >= 500:
                    headers = outcome.take_server_fault(headers)
                message["headers"] = [*headers, (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            scope = await self._resolve_tenant(scope)
        except StrongroomError as error:
            await error_response(error)(scope, receive, send_with_context)
            self._observe(scope, outcome, started, None)
            return

        tenant: TenantInfo | None = scope["state"].get("tenant")
        token = current_tenant.set(tenant)
        try:
            await self.app(scope, receive, send_with_context)
        finally:
            current_tenant.reset(token)
            self._observe(scope, outcome, started, tenant)

    async def _resolve_tenant(self, scope: Scope) -> Scope:
        host = _header(scope, b"host") or ""
        resolution = resolve(host, scope["path"], self.runtime.settings.base_domain)
        scope = dict(scope)
        scope.setdefault("state", {})
        scope["state"] = dict(scope["state"], tenant=None)
        if resolution.slug is None:
            return scope

        log_context.bind(tenant=resolution.slug)
        tenant = await _find_tenant(self.runtime, resolution.slug)
        if tenant is None:
            raise TenantNotFound(f"no tenant is named {resolution.slug!r}; check the URL")
        check_tenant_available(tenant)
        await self.runtime.fair_share.check_tenant_request(tenant)
        scope["state"]["tenant"] = tenant
        if resolution.root_path:
            scope["path"] = resolution.path
            scope["raw_path"] = resolution.path.encode("utf-8")
            scope["root_path"] = scope.get("root_path", "") + resolution.root_path
        return scope

    def _observe(
        self, scope: Scope, outcome: Outcome, started: float, tenant: TenantInfo | None
    ) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        elapsed = time.perf_counter() - started
        status = outcome.status
        if tenant is not None:
            self.runtime.meter.record_request(tenant, status, outcome.server_fault)
        metrics.observe_request(scope["method"], route, status, elapsed)
        access_logger().info(
            "request",
            method=scope["method"],
            route=route,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
        )


_SERVER_FAULT_HEADER = SERVER_FAULT_HEADER.lower().encode("latin-1")


class Outcome:
    """The status of a request's response, and whether an error response marked it as the server's fault."""

    def __init__(self) -> None:
        self.status = 500
        self.server_fault = False

    def take_server_fault(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """Note the server-fault mark of an error response and return its headers without it."""
        unmarked = [
            (name, value) for name, value in headers if name.lower() != _SERVER_FAULT_HEADER
        ]
        self.server_fault = len(unmarked) != len(headers)
        return unmarked


MAINTENANCE = {
    MIGRATING: "is being migrated to this version's database schema",
    PROVISIONING: "is still being created",
}


def check_tenant_available(tenant: TenantInfo) -> None:
    # A moving tenant serves requests: its store's write fence blocks writes during
    # the last copy only (tenancy/store_state.py).
    if tenant.status in (ACTIVE, MOVING) and store_is_current(tenant):
        return
    if tenant.status == SUSPENDED:
        raise TenantSuspended(
            f"tenant {tenant.slug!r} is suspended; its data is kept, but it cannot be used "
            "until the operator resumes it"
        )
    # An active tenant whose own store is behind waits for `strongroom migrate`.
    status = MIGRATING if tenant.status == ACTIVE else tenant.status
    reason = MAINTENANCE.get(status, f"is {status}")
    error = ServiceUnavailable(
        f"tenant {tenant.slug!r} {reason}, for maintenance; retry in a minute"
    )
    error.headers["Retry-After"] = "60"
    raise error


async def _find_tenant(runtime: Runtime, slug: str) -> TenantInfo | None:
    cached = runtime.catalog.cached_tenant(slug)
    if cached is not None:
        return cached[0]
    return await anyio.to_thread.run_sync(runtime.catalog.find_tenant, slug)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def _request_id(scope: Scope) -> str:
    """Keep a well-formed X-Request-ID from a proxy, so logs line up across hops; else make one."""
    given = _header(scope, b"x-request-id")
    if given and REQUEST_ID_PATTERN.fullmatch(given):
        return given
    return _new_request_ids.next()


class RequestIds:
    """Ids of 32 hex digits: 16 random per process, then a counter.

    They are as unique across replicas as random ids, without reading the
    random source on every request. They are not secret and need not be
    unpredictable. A forked child draws a prefix of its own.
    """

    def __init__(self) -> None:
        self._restart()
        os.register_at_fork(after_in_child=self._restart)

    def _restart(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


_new_request_ids = RequestIds()


def tenant_of_scope(scope: dict[str, Any]) -> TenantInfo | None:
    return scope.get("state", {}).get("tenant")
