"""The one way routes get the runtime, the tenant and the authenticated user."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request
from fastapi.params import Depends as DependsMarker
from starlette.types import ASGIApp, Receive, Scope, Send

from strongroom.base import log_context
from strongroom.base.errors import (
    Forbidden,
    NotAuthenticated,
    NotFound,
    StrongroomError,
    TenantNotFound,
)
from strongroom.identity.tokens import Principal, authenticate_token, touch_token
from strongroom.interfaces.api.confinement import check_guest_reach
from strongroom.interfaces.api.problems import error_response
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.events import Actor, anonymous_actor, user_actor
from strongroom.tenancy.modules import check_module, check_module_name

API_PREFIX = "/api/v1"


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


def tenant_of(request: Request) -> TenantInfo:
    """Return the tenant the middleware resolved, or raise when the URL names none."""
    tenant = request.scope.get("state", {}).get("tenant")
    if tenant is None:
        raise TenantNotFound(
            "this route belongs to a tenant; call it under /t/{slug}/ or on {slug}.{base domain}"
        )
    return tenant


async def authenticate(request: Request, runtime: Runtime, tenant: TenantInfo) -> Principal:
    """Authenticate the bearer token within the tenant; any failure is the same 401.

    A guest's token then passes only on the routes open to guests, and gets 403 elsewhere.
    """
    scheme, _, secret = (request.headers.get("authorization") or "").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise NotAuthenticated("send an API token as `Authorization: Bearer TOKEN`")

    principal = runtime.tokens.get(tenant.id, secret)
    if principal is None:
        principal = await anyio.to_thread.run_sync(_authenticate, runtime, tenant, secret)
        runtime.tokens.put(tenant.id, secret, principal)
    if principal.is_guest:
        check_guest_reach(request.scope, tenant)
    runtime.meter.record_user(tenant, principal.user_id)
    log_context.bind(actor=f"{principal.user_id}@{tenant.slug}")
    await runtime.fair_share.check_user_request(tenant, principal.user_id)
    return principal


async def get_runtime(request: Request) -> Runtime:
    return runtime_of(request)


async def require_tenant(request: Request) -> TenantInfo:
    return tenant_of(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
TenantDep = Annotated[TenantInfo, Depends(require_tenant)]


async def require_principal(request: Request, runtime: RuntimeDep, tenant: TenantDep) -> Principal:
    return await authenticate(request, runtime, tenant)


# The functions HotPaths (hotpaths.py) calls for each dependency above, in place of FastAPI's solver.
FAST_DEPENDENCIES: dict[Callable[..., Any], Callable[[Request], Awaitable[Any]]] = {
    get_runtime: get_runtime,
    require_tenant: require_tenant,
    require_principal: lambda request: authenticate(request, runtime_of(request), tenant_of(request)),
}


def _authenticate(runtime: Runtime, tenant: TenantInfo, secret: str) -> Principal:
    with runtime.stores.session(tenant) as session:
        principal = authenticate_token(session, secret)
    if principal.token_needs_touch and principal.token_id is not None:
        with runtime.stores.session(tenant, write=True) as session:
            touch_token(session, principal.token_id)
    return principal


PrincipalDep = Annotated[Principal, Depends(require_principal)]


async def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.is_admin:
        raise Forbidden("this needs the admin role in the tenant; ask a tenant admin")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]


def client_address(request: Request) -> str | None:
    """Return the client's IP address as the server saw it, for the audit trail."""
    return request.client.host if request.client else None


def actor_of(request: Request, user_id: uuid.UUID | None) -> Actor:
    """Return the audit actor of a request: the user, or an anonymous visitor without one."""
    if user_id is None:
        return anonymous_actor(client_address(request))
    return user_actor(user_id, client_address(request))


def parse_object_id(text: str, kind: str) -> uuid.UUID:
    """Parse an object id from a URL; a malformed id is as unknown as a well-formed one."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFound(f"no {kind} has the id {text!r}") from None


def require_module(name: str) -> DependsMarker:
    """Return a route dependency that responds with 403 when the module is off for the tenant.

    Use it as `dependencies=[require_module("versioning")]` on a route or router.
    """
    check_module_name(name)

    async def module_is_on(request: Request) -> None:
        check_module(tenant_of(request), name)

    return Depends(module_is_on)


class ModuleGate:
    """An ASGI wrapper for mounts outside FastAPI's routing (WebDAV, tus): 403 when the module is off.

    The request context middleware must run first, so that the scope carries the tenant.
    """

    def __init__(self, app: ASGIApp, module: str) -> None:
        self.app = app
        self.module = check_module_name(module)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tenant = scope.get("state", {}).get("tenant")
        if scope["type"] == "http" and tenant is not None:
            try:
                check_module(tenant, self.module)
            except StrongroomError as error:
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)
