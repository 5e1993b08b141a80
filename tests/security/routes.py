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

from strongroom.interfaces.api.dependencies import require_admin, require_principal, require_tenant
from strongroom.interfaces.web.routing import WebRoute

# Bodies the suite can send.
UPLOAD = "upload"
MOVE = "move"
NEW_TOKEN = "new token"
SETTINGS = "settings"
MODULES = "modules"
TUS_CREATION = "tus creation"
TUS_APPEND = "tus append"
TUS = "tus"  # no body, but the protocol's version header
GROUP_NAME = "group name"
NEW_SHARE = "new share"
PERMISSION = "permission"
RESTORE = "restore"
NEW_LINK = "new link"
NEW_UPLOAD_REQUEST = "new upload request"
PASSWORD_FORM = "password form"
FILES_FORM = "files form"
NEW_WEBHOOK = "new webhook"
WEBHOOK_CHANGE = "webhook change"
NEW_GUEST = "new guest"
NEW_EXPORT = "new export"

# How each path parameter is filled: with a path, a file name, an id of one kind, or the
# secret token of a public link or upload request.
PUBLIC_TOKEN = "public token"
PARAMETER_KINDS = {
    "path": "path",
    "name": "name",
    "rest": "path",
    "node_id": "node",
    "item_id": "trash",
    "token_id": "token",
    "upload_id": "upload",
    "app_password_id": "app password",
    "share_id": "share",
    "group_id": "group",
    "user_id": "user",
    "link_id": "link",
    "request_id": "upload request",
    "webhook_id": "webhook",
    "delivery_id": "webhook delivery",
    "guest_id": "guest",
    "export_id": "export",
    "token": PUBLIC_TOKEN,
}

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
    ("POST", "/api/v1/versions/{path:path}"): RESTORE,
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
    ("GET", "/api/v1/settings"): None,
    ("PATCH", "/api/v1/settings"): SETTINGS,
    ("GET", "/api/v1/modules"): None,
    ("PATCH", "/api/v1/modules"): MODULES,
    ("GET", "/api/v1/limits"): None,
    ("GET", "/api/v1/audit"): None,
    ("GET", "/api/v1/audit/export"): None,
    ("OPTIONS", "/api/v1/uploads/"): None,
    ("POST", "/api/v1/uploads/"): TUS_CREATION,
    ("OPTIONS", "/api/v1/uploads/{upload_id}"): None,
    ("HEAD", "/api/v1/uploads/{upload_id}"): TUS,
    ("PATCH", "/api/v1/uploads/{upload_id}"): TUS_APPEND,
    ("DELETE", "/api/v1/uploads/{upload_id}"): TUS,
    ("GET", "/api/v1/me/app-passwords"): None,
    # The body of a new token, {"name": ...}, is also the body of a new app password.
    ("POST", "/api/v1/me/app-passwords"): NEW_TOKEN,
    ("DELETE", "/api/v1/me/app-passwords/{app_password_id}"): None,
    ("POST", "/api/v1/shares"): NEW_SHARE,
    ("GET", "/api/v1/shares"): None,
    ("GET", "/api/v1/shares/{share_id}"): None,
    ("PATCH", "/api/v1/shares/{share_id}"): PERMISSION,
    ("DELETE", "/api/v1/shares/{share_id}"): None,
    ("GET", "/api/v1/shared-with-me"): None,
    ("GET", "/api/v1/shares/{share_id}/files/{path:path}"): None,
    ("HEAD", "/api/v1/shares/{share_id}/files/{path:path}"): None,
    ("PUT", "/api/v1/shares/{share_id}/files/{path:path}"): UPLOAD,
    ("DELETE", "/api/v1/shares/{share_id}/files/{path:path}"): None,
    ("GET", "/api/v1/shares/{share_id}/folders/{path:path}"): None,
    ("POST", "/api/v1/shares/{share_id}/folders/{path:path}"): None,
    ("DELETE", "/api/v1/shares/{share_id}/folders/{path:path}"): None,
    ("GET", "/api/v1/users"): None,
    ("GET", "/api/v1/groups"): None,
    ("POST", "/api/v1/groups"): GROUP_NAME,
    ("GET", "/api/v1/groups/{group_id}"): None,
    ("PATCH", "/api/v1/groups/{group_id}"): GROUP_NAME,
    ("DELETE", "/api/v1/groups/{group_id}"): None,
    ("PUT", "/api/v1/groups/{group_id}/members/{user_id}"): None,
    ("DELETE", "/api/v1/groups/{group_id}/members/{user_id}"): None,
    ("POST", "/api/v1/links"): NEW_LINK,
    ("GET", "/api/v1/links"): None,
    ("DELETE", "/api/v1/links/{link_id}"): None,
    ("POST", "/api/v1/upload-requests"): NEW_UPLOAD_REQUEST,
    ("GET", "/api/v1/upload-requests"): None,
    ("DELETE", "/api/v1/upload-requests/{request_id}"): None,
    ("POST", "/api/v1/webhooks"): NEW_WEBHOOK,
    ("GET", "/api/v1/webhooks"): None,
    ("GET", "/api/v1/webhooks/{webhook_id}"): None,
    ("PATCH", "/api/v1/webhooks/{webhook_id}"): WEBHOOK_CHANGE,
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): None,
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): None,
    ("POST", "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay"): None,
    # The body is optional: without one, the old secret overlaps the new one for a day.
    ("POST", "/api/v1/webhooks/{webhook_id}/secret"): None,
    ("POST", "/api/v1/guests"): NEW_GUEST,
    ("GET", "/api/v1/guests"): None,
    ("DELETE", "/api/v1/guests/{guest_id}"): None,
    ("POST", "/api/v1/admin/exports"): NEW_EXPORT,
    ("GET", "/api/v1/admin/exports"): None,
    ("GET", "/api/v1/admin/exports/{export_id}"): None,
    ("GET", "/api/v1/admin/exports/{export_id}/content"): None,
    ("HEAD", "/api/v1/admin/exports/{export_id}/content"): None,
    ("DELETE", "/api/v1/admin/exports/{export_id}"): None,
    ("GET", "/s/{token}"): None,
    ("GET", "/s/{token}/download"): None,
    ("HEAD", "/s/{token}/download"): None,
    ("GET", "/s/{token}/folders/{path:path}"): None,
    ("GET", "/s/{token}/files/{path:path}"): None,
    ("POST", "/s/{token}/unlock"): PASSWORD_FORM,
    ("GET", "/r/{token}"): None,
    ("POST", "/r/{token}"): FILES_FORM,
    ("PUT", "/r/{token}/files/{name:path}"): UPLOAD,
    ("POST", "/r/{token}/unlock"): PASSWORD_FORM,
    # Any other address under an upload request, which gets a message for visitors.
    **{(method, "/r/{token}/{rest:path}"): None for method in ("GET", "HEAD", "DELETE")},
    **{(method, "/r/{token}/{rest:path}"): UPLOAD for method in ("POST", "PUT", "PATCH")},
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
    admin: bool = False  # needs the admin role in that tenant

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def body(self) -> str | None:
        return KNOWN_ROUTES[self.method, self.path]

    @property
    def id_params(self) -> tuple[str, ...]:
        """Return the parameters that name an object by its id (not paths, names or tokens)."""
        return tuple(
            name
            for name in self.params
            if PARAMETER_KINDS.get(name) not in ("path", "name", PUBLIC_TOKEN)
        )

    @property
    def public(self) -> bool:
        """Return True for a route of a link or upload request, which its token alone opens."""
        return PUBLIC_TOKEN in (PARAMETER_KINDS.get(name) for name in self.params)

    @property
    def guarded(self) -> bool:
        """Return True when only a token of the request's tenant may get a success."""
        return self.tenant and self.authenticated


def _dependency_calls(dependant: Any) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _dependency_calls(sub)


def app_routes(app: FastAPI) -> list[Route]:
    """List every method of every route the application serves, in its declared order.

    Pages of the web UI are left out: they take session cookies, not bearer
    tokens, and test_web_sessions.py sends another tenant's cookie to each.
    """
    routes = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, WebRoute):
            continue
        calls = set(_dependency_calls(route.dependant)) if isinstance(route, APIRoute) else set()
        for method in sorted(context.methods or ()):
            routes.append(
                Route(
                    method=method,
                    path=context.path,
                    params=tuple(context.param_convertors),
                    tenant=require_tenant in calls,
                    authenticated=require_principal in calls,
                    admin=require_admin in calls,
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
