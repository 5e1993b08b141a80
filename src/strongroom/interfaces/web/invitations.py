"""The page where an invited guest chooses a password, from the link in the invitation e-mail.

The form is protected like the login form: a random token in a cookie and in
the form must match, and the request must come from this site. The link
works once; the guest then logs in through the login page.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from strongroom.base.errors import InvalidInput
from strongroom.identity import guests
from strongroom.interfaces.api.dependencies import (
    RuntimeDep,
    TenantDep,
    client_address,
    require_module,
)
from strongroom.interfaces.web.auth import check_login_token
from strongroom.interfaces.web.pages import render
from strongroom.interfaces.web.routing import WebRoute, redirect
from strongroom.interfaces.web.security import LOGIN_COOKIE, base_path, new_login_token, set_cookie
from strongroom.tenancy.modules import GUESTS

router = APIRouter(
    route_class=WebRoute, include_in_schema=False, dependencies=[require_module(GUESTS)]
)


def _page(
    request: Request, token: str, email: str, csrf: str, error: str | None = None, status: int = 200
) -> Response:
    context = {"title": "Choose your password", "email": email, "token": token, "error": error}
    return render(request, "invitation.html", context, status, csrf_token=csrf)


@router.get("/invite/{token}")
def invitation_form(token: str, request: Request, runtime: RuntimeDep, tenant: TenantDep) -> Response:
    with runtime.stores.session(tenant) as session:
        _invitation, guest = guests.access_invitation(session, token)
    csrf = request.cookies.get(LOGIN_COOKIE) or new_login_token()
    response = _page(request, token, guest.email, csrf)
    set_cookie(response, request, runtime, LOGIN_COOKIE, csrf)
    return response


@router.post("/invite/{token}")
def accept_invitation(
    token: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    password: Annotated[str, Form(max_length=1024)] = "",
    confirmation: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    check_login_token(request, csrf_token)
    try:
        if password != confirmation:
            raise InvalidInput("the two passwords differ; type the same password twice")
        with runtime.stores.session(tenant, write=True) as session:
            guests.accept_invitation(session, tenant, token, password, client_address(request))
    except InvalidInput as error:
        with runtime.stores.session(tenant) as session:
            _invitation, guest = guests.access_invitation(session, token)
        return _page(request, token, guest.email, csrf_token, error.detail, 400)
    return redirect(request, f"{base_path(request)}/login?done=password-set")
