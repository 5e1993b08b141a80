"""Guest confinement: a guest reaches the routes marked open to guests, and nothing else.

Every route is closed to guests unless its endpoint carries `@open_to_guests`,
so a route added later is closed until someone decides otherwise. The REST
API checks this in its one authentication dependency, and the web UI in its
one session check, both before any endpoint code runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from starlette.types import Scope

from strongroom.base.errors import GuestConfined
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.modules import GUESTS, check_module

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])

_GUEST_ENDPOINTS: set[Callable[..., Any]] = set()

GUEST_CONFINED = (
    "guests reach only what is shared with them: GET /api/v1/me, GET /api/v1/shared-with-me and "
    "/api/v1/shares/{share_id}/files/... or /folders/... of a share with them; ask the person "
    "who invited you to share what you need"
)


def open_to_guests(endpoint: Endpoint) -> Endpoint:
    """Mark a route's endpoint as reachable by guests; put it below the route decorator."""
    _GUEST_ENDPOINTS.add(endpoint)
    return endpoint


def is_open_to_guests(scope: Scope) -> bool:
    route = scope.get("route")
    endpoint = getattr(route, "endpoint", None) or scope.get("endpoint")
    return endpoint is not None and endpoint in _GUEST_ENDPOINTS


def check_guest_reach(scope: Scope, tenant: TenantInfo) -> None:
    """Raise unless a guest may call the matched route: 403 for a closed route or a module off."""
    check_module(tenant, GUESTS)
    if not is_open_to_guests(scope):
        raise GuestConfined(GUEST_CONFINED)
