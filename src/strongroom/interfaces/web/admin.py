"""Admin pages of a tenant: users, branding and settings.

Only admins of the tenant reach them; a member gets a 403 page.
"""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Form, Request
from starlette.datastructures import UploadFile
from starlette.responses import Response

from strongroom.base.errors import Forbidden, InvalidInput
from strongroom.drive.files import create_root
from strongroom.identity import logins, passwords, second_factors, users
from strongroom.interfaces.api.dependencies import (
    RuntimeDep,
    TenantDep,
    actor_of,
    parse_object_id,
)
from strongroom.interfaces.web.auth import UserDep, WriterDep
from strongroom.interfaces.web.pages import SignedIn, render, web_state
from strongroom.interfaces.web.routing import WebRoute, redirect
from strongroom.interfaces.web.security import base_path
from strongroom.tenancy import branding
from strongroom.tenancy.events import Target, add_event

router = APIRouter(route_class=WebRoute, include_in_schema=False)

NOT_ADMIN = "this page is for the tenant's admins; ask one of them to do this for you"


def require_admin(user: UserDep) -> SignedIn:
    if not user.identity.is_admin:
        raise Forbidden(NOT_ADMIN)
    return user


def require_admin_writer(user: WriterDep) -> SignedIn:
    if not user.identity.is_admin:
        raise Forbidden(NOT_ADMIN)
    return user


AdminDep = Annotated[SignedIn, Depends(require_admin)]
AdminWriterDep = Annotated[SignedIn, Depends(require_admin_writer)]


# Users --------------------------------------------------------------------------------


def _users_page(
    request: Request, runtime: RuntimeDep, tenant: TenantDep, created: dict | None = None,
    status_code: int = 200,
) -> Response:
    with runtime.stores.session(tenant) as session:
        records = logins.login_records(session)
        with_code = second_factors.users_with_second_factor(session)
        rows = [
            {
                "id": user.id,
                "email": user.email,
                "display_name": user.display_name,
                "role": user.role,
                "status": user.status,
                "expires_at": user.expires_at,
                "second_factor": user.id in with_code,
                "last_login": records[user.id].last_login_at if user.id in records else None,
                "failures": records[user.id].failures_since_login if user.id in records else 0,
            }
            for user in users.list_users(session)
        ]
    context = {"title": "Users", "users": rows, "created": created, "section": "admin-users"}
    return render(request, "admin_users.html", context, status_code)


@router.get("/admin/users")
def users_page(request: Request, runtime: RuntimeDep, tenant: TenantDep, _admin: AdminDep) -> Response:
    return _users_page(request, runtime, tenant)


@router.post("/admin/users")
def create_user(
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    admin: AdminWriterDep,
    email: Annotated[str, Form(max_length=320)] = "",
    display_name: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=20)] = "member",
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    generated = not password
    password = password or passwords.generate_password(tenant.settings.password_policy)
    with runtime.stores.session(tenant, write=True) as session:
        user = users.create_user(
            session, email, password, role, display_name.strip(), tenant=tenant
        )
        create_root(session, user.id)
        add_event(
            session,
            tenant,
            "user_created",
            actor_of(request, admin.identity.user_id),
            target=Target("user", user.id),
            new={"role": user.role, "status": user.status},
        )
    created = {"email": user.email, "password": password if generated else None}
    return _users_page(request, runtime, tenant, created, 201)


def _back(request: Request, done: str) -> Response:
    return redirect(request, f"{base_path(request)}/admin/users?done={done}")


@router.post("/admin/users/{user_id}/role")
def change_role(
    user_id: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    admin: AdminWriterDep,
    role: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    target = parse_object_id(user_id, "user")
    with runtime.stores.session(tenant, write=True) as session:
        old_role = users.access_user(session, target).role
        user = users.change_role(session, target, role, admin.identity.user_id)
        if user.role != old_role:
            add_event(
                session,
                tenant,
                "user_role_changed",
                actor_of(request, admin.identity.user_id),
                target=Target("user", user.id),
                old={"role": old_role},
                new={"role": user.role},
            )
    runtime.tokens.clear()
    return _back(request, "role-changed")


@router.post("/admin/users/{user_id}/status")
def change_status(
    user_id: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    admin: AdminWriterDep,
    status: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    target = parse_object_id(user_id, "user")
    with runtime.stores.session(tenant, write=True) as session:
        old_status = users.access_user(session, target).status
        user = users.set_user_status(session, target, status, admin.identity.user_id)
        if user.status != old_status:
            add_event(
                session,
                tenant,
                "user_status_changed",
                actor_of(request, admin.identity.user_id),
                target=Target("user", user.id),
                old={"status": old_status},
                new={"status": user.status},
            )
    # Cached API tokens of a disabled user must stop working in this process at once.
    runtime.tokens.clear()
    return _back(request, "status-changed")


@router.post("/admin/users/{user_id}/second-factor/reset")
def reset_second_factor(
    user_id: str, request: Request, runtime: RuntimeDep, tenant: TenantDep, admin: AdminWriterDep
) -> Response:
    target = parse_object_id(user_id, "user")
    with runtime.stores.session(tenant, write=True) as session:
        users.access_user(session, target)
        second_factors.remove_second_factor(session, target)
        add_event(
            session,
            tenant,
            "second_factor_reset",
            actor_of(request, admin.identity.user_id),
            target=Target("user", target),
        )
    return _back(request, "second-factor-reset")


# Settings -----------------------------------------------------------------------------


@router.get("/admin/settings")
def settings_page(
    request: Request, _runtime: RuntimeDep, tenant: TenantDep, _admin: AdminDep
) -> Response:
    context = {"title": "Settings", "section": "admin-settings", "limits": branding}
    return render(request, "admin_settings.html", context)


@router.post("/admin/settings")
async def save_settings(
    request: Request, runtime: RuntimeDep, tenant: TenantDep, admin: AdminWriterDep
) -> Response:
    limit = branding.MAX_LOGO_BYTES + 1
    # The context manager closes the uploaded file's spool when the form is done.
    async with request.form(max_files=1, max_fields=10, max_part_size=limit) as form:
        logo = form.get("logo")
        data = None
        if isinstance(logo, UploadFile) and logo.filename:
            data = await logo.read(limit)
            if not data:
                raise InvalidInput(f"the logo file {logo.filename!r} is empty; choose an image")
        display_name = str(form.get("display_name") or "")
        colour = str(form.get("colour") or "")
        remove_logo = form.get("remove_logo") == "on"
    saved = await anyio.to_thread.run_sync(
        lambda: branding.set_branding(
            runtime.catalog,
            runtime.stores,
            tenant,
            actor_of(request, admin.identity.user_id),
            display_name,
            colour,
            data,
            remove_logo=remove_logo,
        )
    )
    web_state(request).branding.put(tenant.id, saved)
    return redirect(request, f"{base_path(request)}/admin/settings?done=branding-saved")
