"""Every route of the application, and how the suite calls each one.

The routes come from the FastAPI application itself. `KNOWN_ROUTES` gives,
for each method and path, the body to send, and `PARAMETER_KINDS` fills path
parameters by their name. A route that is in the application but
not here, or that has a parameter of a kind the suite cannot fill, makes the
attack tests fail: a new route must be taught to the suite before it ships.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from strongroom.interfaces.api.dependencies import require_principal, require_tenant

# Bodies the suite can send.
UPLOAD = "upload"
MOVE = "move"
NEW_TOKEN = "new token"

# How each path parameter is filled: with a path, or with an id of one kind.
PARAMETER_KINDS = {"path": "path", "node_id": "node", "item_id": "trash", "token_id": "token"}

KNOWN_ROUTES: dict[tuple[str, str], str | None] = {
    ("GET", "/healthz"): None,
    ("GET", "/readyz"): None,
    ("GET", "/metrics"): None,
    ("GET", "/api/v1/openapi.json"): None,
    ("HEAD", "/api/v1/openapi.json"): None,
    ("PUT", "/api/v1/files/{path:path}"): UPLOAD,
    ("GET", "/api/v1/files/{path:path}"): None,
    ("HEAD", "/api/v1/files/{path:path}"): None,
    ("DELETE", "/api/v1/files/{path:path}"): None,
    ("GET", "/api/v1/versions/{path:path}"): None,
    ("GET", "/api/v1/folders/{path:path}"): None,
    ("POST", "/api/v1/folders/{path:path}"): None,
    ("DELETE", "/api/v1/folders/{path:path}"): None,
    ("POST", "/api/v1/move"): MOVE,
    ("GET", "/api/v1/nodes/{node_id}"): None,
    ("GET", "/api/v1/trash"): None,
    ("POST", "/api/v1/trash/{item_id}/restore"): None,
    ("DELETE", "/api/v1/trash/{item_id}"): None,
    ("DELETE", "/api/v1/trash"): None,
    ("GET", "/api/v1/me"): None,
    ("GET", "/api/v1/usage"): None,
    ("GET", "/api/v1/tokens"): None,
    ("POST", "/api/v1/tokens"): NEW_TOKEN,
    ("DELETE", "/api/v1/tokens/{token_id}"): None,
    # The operator API: a tenant's token, or a tenant's URL, never reaches it.
    ("GET", "/api/v1/operator/usage"): None,
}


@dataclass(frozen=True)
class Route:
    """One method of one route, as the application declares it."""

    method: str
    path: str
    params: tuple[str, ...]
    tenant: bool  # depends on the request's tenant
    authenticated: bool  # needs a bearer token of that tenant

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def body(self) -> str | None:
        return KNOWN_ROUTES[self.method, self.path]

    @property
    def id_params(self) -> tuple[str, ...]:
        return tuple(name for name in self.params if PARAMETER_KINDS.get(name) != "path")

    @property
    def guarded(self) -> bool:
        """Return True when only a token of the request's tenant may get a success."""
        return self.tenant and self.authenticated


def _dependency_calls(dependant: Any) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _dependency_calls(sub)


def app_routes(app: FastAPI) -> list[Route]:
    """List every method of every route the application serves, in its declared order."""
    routes = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        calls = set(_dependency_calls(route.dependant)) if isinstance(route, APIRoute) else set()
        for method in sorted(context.methods or ()):
            routes.append(
                Route(
                    method=method,
                    path=context.path,
                    params=tuple(context.param_convertors),
                    tenant=require_tenant in calls,
                    authenticated=require_principal in calls,
                )
            )
    return routes


def unknown_routes(routes: list[Route]) -> list[str]:
    """Describe each route the suite does not know how to call."""
    problems = []
    for route in routes:
        if (route.method, route.path) not in KNOWN_ROUTES:
            problems.append(f"{route} is not in tests/security/routes.py KNOWN_ROUTES")
        for name in route.params:
            if name not in PARAMETER_KINDS:
                problems.append(f"{route} has the parameter {name!r}, missing from PARAMETER_KINDS")
    return problems


def stale_routes(routes: list[Route]) -> list[str]:
    served = {(route.method, route.path) for route in routes}
    return [f"{method} {path}" for method, path in KNOWN_ROUTES if (method, path) not in served]
