"""The tenant of the current request, in a context variable.

Only the edges read it: request middleware sets it, the API's dependencies
and the log context pick it up, and `tenant_session()` without an explicit
tenant falls back to it. Domain code receives the tenant, or a session already
bound to it, as an argument. `asyncio` copies context variables into tasks and
`anyio.to_thread` into worker threads; `start_thread_with_context` is there
for plain threads.
"""

from __future__ import annotations

import contextvars
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from strongroom.base.errors import MissingTenantContext

ACTIVE = "active"
SUSPENDED = "suspended"
# A tenant whose store is being made; it stays in this state if making it failed and so
# did removing what was made, for the operator to see in `strongroom tenant show`.
PROVISIONING = "provisioning"
# A tenant whose own store is being migrated, or whose migration failed: its requests get 503.
MIGRATING = "migrating"
# A tenant whose rows are being copied to another store; it serves requests throughout
# (see tenancy/moves.py).
MOVING = "moving"
TENANT_STATUSES = (PROVISIONING, ACTIVE, SUSPENDED, MOVING, MIGRATING, "deleting")
ISOLATION_LEVELS = ("shared", "schema", "database")


@dataclass(frozen=True)
class TenantInfo:
    """A snapshot of a tenant's catalog row, safe to pass between threads."""

    id: uuid.UUID
    slug: str
    name: str
    status: str
    isolation: str
    server: str
    placement: str
    quota_bytes: int | None
    # The tenant revision of the tenant's own schema or database; None on the shared level,
    # whose store has one revision for all its tenants, in its own version table.
    store_revision: str | None = None
    # The name of the tenant's plan, a label of the per-plan metrics.
    plan: str = "default"


current_tenant: contextvars.ContextVar[TenantInfo | None] = contextvars.ContextVar(
    "current_tenant", default=None
)


def require_current_tenant() -> TenantInfo:
    tenant = current_tenant.get()
    if tenant is None:
        raise MissingTenantContext("no tenant is bound to this request or job")
    return tenant


@contextmanager
def bound_tenant(tenant: TenantInfo) -> Iterator[TenantInfo]:
    token = current_tenant.set(tenant)
    try:
        yield tenant
    finally:
        current_tenant.reset(token)


def start_thread_with_context(target: Callable[..., Any], *args: Any) -> threading.Thread:
    """Start a thread that runs in a copy of the caller's context: its tenant and log fields."""
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(target, *args), daemon=True)
    thread.start()
    return thread
