"""The account page: two-step verification with an authenticator app, and recovery codes."""

from __future__ import annotations

from typing import Annotated

import segno
from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from strongroom.base.errors import InvalidInput, NotAuthenticated
from strongroom.identity import passwords, second_factors
from strongroom.identity.users import access_user
from strongroom.interfaces.api.dependencies import RuntimeDep, TenantDep
from strongroom.interfaces.web.auth import UserDep, WriterDep
from strongroom.interfaces.web.pages import render, web_state
from strongroom.interfaces.web.routing import WebRoute, redirect
from strongroom.interfaces.web.security import base_path

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/account")
def account(request: Request, runtime: RuntimeDep, tenant: TenantDep, user: UserDep) -> Response:
    user_id = user.identity.user_id
    with runtime.stores.session(tenant) as session:
        enabled = second_factors.has_second_factor(session, user_id)
        codes_left = second_factors.unused_recovery_codes(session, user_id) if enabled else 0
    context = {
        "title": "Account",
        "second_factor": enabled,
        "codes_left": codes_left,
        "section": "account",
    }
    return render(request, "account.html", context)


@router.post("/account/second-factor")
def begin_second_factor(
    request: Request, runtime: RuntimeDep, tenant: TenantDep, user: WriterDep
) -> Response:
    with runtime.stores.session(tenant, write=True) as session:
        secret = second_factors.begin_enrolment(session, runtime.keyring, user.identity.user_id)
    issuer = web_state(request).branding.get(tenant).display_name
    uri = second_factors.provisioning_uri(secret, user.identity.email, issuer)
    context = {
        "title": "Set up two-step verification",
        "secret": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        "uri": uri,
        # segno writes the SVG markup itself from the URI; nothing in it comes from a person.
        "qr_svg": segno.make(uri, error="m").svg_inline(scale=4, title="QR code of the key"),
        "section": "account",
    }
    return render(request, "second_factor_setup.html", context)


@router.post("/account/second-factor/confirm")
def confirm_second_factor(
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    user: WriterDep,
    code: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    with runtime.stores.session(tenant, write=True) as session:
        codes = second_factors.confirm_enrolment(
            session, runtime.keyring, user.identity.user_id, code
        )
    context = {"title": "Recovery codes", "codes": codes, "section": "account"}
    return render(request, "recovery_codes.html", context)


def _check_password(runtime: RuntimeDep, tenant: TenantDep, user: WriterDep, password: str) -> None:
    with runtime.stores.session(tenant) as session:
        row = access_user(session, user.identity.user_id)
        if not passwords.verify_password(row.password_hash, password):
            raise NotAuthenticated("the password is wrong; type your current password")


@router.post("/account/second-factor/disable")
def disable_second_factor(
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    user: WriterDep,
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    _check_password(runtime, tenant, user, password)
    with runtime.stores.session(tenant, write=True) as session:
        second_factors.remove_second_factor(session, user.identity.user_id)
    return redirect(request, f"{base_path(request)}/account?done=second-factor-off")


@router.post("/account/recovery-codes")
def new_recovery_codes(
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    user: WriterDep,
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    _check_password(runtime, tenant, user, password)
    with runtime.stores.session(tenant, write=True) as session:
        if not second_factors.has_second_factor(session, user.identity.user_id):
            raise InvalidInput("two-step verification is off, so there are no recovery codes")
        codes = second_factors.replace_recovery_codes(session, user.identity.user_id)
    context = {"title": "Recovery codes", "codes": codes, "section": "account"}
    return render(request, "recovery_codes.html", context)
