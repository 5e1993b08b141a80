"""The password step of a protected link or upload request, for scripts and for browsers.

A script sends the password with HTTP Basic on each request and gets 401
with a Basic challenge without it. A browser gets a form instead, and a
right password in it sets an unlock cookie (see `grants`).
"""

from __future__ import annotations

import uuid

import anyio
from fastapi import Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from strongroom.base.errors import PasswordRequired
from strongroom.identity.passwords import verify_password
from strongroom.interfaces.public import grants
from strongroom.interfaces.public.pages import render, secure, wants
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo

SCRIPT_ADVICE = "send it with HTTP Basic and any user name, as in `curl -u :PASSWORD URL`"


async def check_password(
    request: Request,
    runtime: Runtime,
    tenant: TenantInfo,
    object_id: uuid.UUID,
    password_hash: str | None,
    area: str,
    token: str,
) -> Response | None:
    """Return None when the request may go on, or the password form a browser must fill in.

    Raises PasswordRequired (401) for a script without the right password.
    """
    if password_hash is None:
        return None
    password = grants.basic_password(request)
    if password is not None:
        if await _verify(request, tenant, object_id, password_hash, password):
            return None
        raise PasswordRequired(f"the password is wrong; {SCRIPT_ADVICE}")
    if grants.is_unlocked(request, runtime, tenant, object_id, password_hash):
        return None
    if wants(request) == "html":
        return password_form(request, area, token, status=200)
    raise PasswordRequired(f"this address is protected by a password; {SCRIPT_ADVICE}")


async def unlock(
    request: Request,
    runtime: Runtime,
    tenant: TenantInfo,
    object_id: uuid.UUID,
    password_hash: str | None,
    area: str,
    token: str,
    form: dict[str, str],
) -> Response:
    """Check the password form; a right password sets the unlock cookie and goes back to the page."""
    path = grants.scope_path(request, area, token)
    if password_hash is None:
        return secure(RedirectResponse(path, status_code=303))
    grants.check_csrf(request, form.get("csrf"))
    if not await _verify(request, tenant, object_id, password_hash, form.get("password", "")):
        return password_form(request, area, token, status=403, error="The password is wrong.")
    response = secure(RedirectResponse(path, status_code=303))
    grants.grant_unlock(request, response, runtime, tenant, object_id, password_hash, path)
    return response


def password_form(
    request: Request, area: str, token: str, status: int, error: str | None = None
) -> Response:
    path = grants.scope_path(request, area, token)
    csrf = grants.csrf_token(request)
    response = render(
        request,
        "password.html",
        status=status,
        heading="A password is needed",
        message="The person who shared this protected it with a password.",
        error=error,
        action=f"{path}/unlock",
        csrf=csrf,
    )
    grants.set_csrf_cookie(request, response, csrf, path)
    return response


async def _verify(
    request: Request, tenant: TenantInfo, object_id: uuid.UUID, password_hash: str, password: str
) -> bool:
    address = request.client.host if request.client else "unknown"
    grants.check_attempts_left(tenant, object_id, address)
    # argon2id takes tens of milliseconds, which the event loop must not wait for.
    right = await anyio.to_thread.run_sync(verify_password, password_hash, password)
    if not right:
        grants.count_wrong_password(tenant, object_id, address)
    return right
