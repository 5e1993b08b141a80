"""Admin pages for the tenant's rules and groups: settings, modules, and groups with their members.

They call the same functions as the API's settings, modules and groups
routes, so every change is validated the same way and lands in the audit
events. Only the tenant's admins reach them.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from strongroom.base.errors import BeyondPlan, InvalidInput
from strongroom.identity import groups
from strongroom.identity.users import list_users
from strongroom.interfaces.api.dependencies import (
    RuntimeDep,
    TenantDep,
    actor_of,
    parse_object_id,
)
from strongroom.interfaces.web.admin import AdminDep, AdminWriterDep
from strongroom.interfaces.web.fields import (
    FORM_LABELS,
    WHOLE_NUMBER,
    describe_errors,
    label_of,
)
from strongroom.interfaces.web.pages import SignedIn, render
from strongroom.interfaces.web.routing import WebRoute, redirect
from strongroom.interfaces.web.security import base_path
from strongroom.storage.db import TenantSession
from strongroom.tenancy.configuration import set_modules, update_settings
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.events import Target, add_event
from strongroom.tenancy.modules import MODULES
from strongroom.tenancy.settings import InvalidSettings

router = APIRouter(route_class=WebRoute, include_in_schema=False)

# The labels of the rules form by setting, for the errors of the settings' validation.
SETTING_LABELS = {
    **{name: FORM_LABELS[name] for name in ("time_zone", "locale", "second_factor_required")},
    "max_file_size": FORM_LABELS["max_file_size"],
    **{name: FORM_LABELS[name] for name in ("blocked_extensions", "link_max_expiry_days")},
    **{name: FORM_LABELS[name] for name in ("versions_kept", "trash_retention_days")},
    "password_policy.min_length": FORM_LABELS["password_min_length"],
}


# Settings and modules -------------------------------------------------------------------


@router.get("/admin/rules")
def rules_page(request: Request, tenant: TenantDep, user: AdminDep) -> Response:
    settings = tenant.settings
    context = {
        "title": "Rules and modules",
        "section": "admin-rules",
        "settings": settings,
        "blocked": ", ".join(settings.blocked_extensions),
        "modules": [
            {"name": name, "on": name in tenant.modules, "allowed": name in tenant.plan_modules}
            for name in MODULES
        ],
        "plan_max_file_size": tenant.limits.max_file_size,
    }
    return render(request, "admin_rules.html", context)


@router.post("/admin/rules/settings")
async def save_settings(
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    user: AdminWriterDep,
    time_zone: Annotated[str, Form(max_length=100)] = "UTC",
    locale: Annotated[str, Form(max_length=40)] = "en",
    password_min_length: Annotated[str, Form(max_length=6)] = "12",
    second_factor_required: Annotated[bool, Form()] = False,
    max_file_size: Annotated[str, Form(max_length=20)] = "",
    blocked_extensions: Annotated[str, Form(max_length=4000)] = "",
    link_max_expiry_days: Annotated[str, Form(max_length=6)] = "",
    versions_kept: Annotated[str, Form(max_length=8)] = "0",
    trash_retention_days: Annotated[str, Form(max_length=6)] = "30",
) -> Response:
    policy = tenant.settings.password_policy.model_dump()
    patch: dict[str, Any] = {
        "time_zone": time_zone.strip(),
        "locale": locale.strip(),
        "password_policy": {
            **policy,
            "min_length": _number(password_min_length, "password_min_length"),
        },
        "second_factor_required": second_factor_required,
        "max_file_size": _optional_number(max_file_size, "max_file_size"),
        "blocked_extensions": [
            part.strip() for part in blocked_extensions.split(",") if part.strip()
        ],
        "link_max_expiry_days": _optional_number(link_max_expiry_days, "link_max_expiry_days"),
        "versions_kept": _number(versions_kept, "versions_kept"),
        "trash_retention_days": _number(trash_retention_days, "trash_retention_days"),
    }
    _check_file_size(patch["max_file_size"], tenant)
    actor = actor_of(request, user.identity.user_id)
    try:
        await anyio.to_thread.run_sync(
            update_settings, runtime.catalog, runtime.stores, tenant.slug, patch, actor
        )
    except InvalidSettings as error:
        raise InvalidInput(describe_errors(error.errors, SETTING_LABELS)) from None
    return redirect(request, f"{base_path(request)}/admin/rules?done=settings-saved")


def _number(text: str, field: str) -> int:
    """Read a whole number, negative ones included, for the settings' validation to check.

    The range is left to that validation, so the form takes every value the API
    takes and rejects the others by the schema's bounds. The field's
    `max_length` bounds the digits.
    """
    value = text.strip()
    if not WHOLE_NUMBER.fullmatch(value):
        raise InvalidInput(
            f"{label_of(field)} {text!r} is not a whole number; enter digits only, such as 30"
        )
    return int(value)


def _optional_number(text: str, field: str) -> int | None:
    return None if not text.strip() else _number(text, field)


def _check_file_size(size: int | None, tenant: TenantInfo) -> None:
    """Reject a largest file above the plan's limit, as `update_settings` does, in the form's words."""
    limit = tenant.limits.max_file_size
    if size is not None and limit is not None and size > limit:
        raise BeyondPlan(
            f"{label_of('max_file_size')} {size} bytes is more than the {limit} bytes the plan "
            f"allows; enter {limit} or less, or ask the operator for a larger limit"
        )


@router.post("/admin/rules/modules")
async def save_modules(
    request: Request, runtime: RuntimeDep, tenant: TenantDep, user: AdminWriterDep
) -> Response:
    form = await request.form()
    # A checkbox that is not ticked sends nothing, so every module the plan allows is set.
    changes = {name: form.get(name) == "on" for name in MODULES if name in tenant.plan_modules}
    actor = actor_of(request, user.identity.user_id)
    await anyio.to_thread.run_sync(
        set_modules, runtime.catalog, runtime.stores, tenant.slug, changes, actor
    )
    return redirect(request, f"{base_path(request)}/admin/rules?done=modules-saved")


# Groups -------------------------------------------------------------------------------


@router.get("/admin/groups")
def groups_page(
    request: Request, runtime: RuntimeDep, tenant: TenantDep, user: AdminDep
) -> Response:
    with runtime.stores.session(tenant) as session:
        people = [
            {"id": person.id, "email": person.email}
            for person in list_users(session, active_only=True)
        ]
        teams = [
            {
                "id": group.id,
                "name": group.name,
                "members": [
                    {"id": member.id, "email": member.email}
                    for member in groups.list_members(session, group.id)
                ],
            }
            for group, _count in groups.list_groups(session)
        ]
    context = {"title": "Groups", "section": "admin-groups", "groups": teams, "people": people}
    return render(request, "admin_groups.html", context)


def _back_to_groups(request: Request, done: str) -> Response:
    return redirect(request, f"{base_path(request)}/admin/groups?done={done}")


@router.post("/admin/groups")
def create_group(
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    user: AdminWriterDep,
    name: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    with runtime.stores.session(tenant, write=True) as session:
        group = groups.create_group(session, name, user.identity.user_id)
        _audit(session, request, tenant, user, "group_created", group.id, new={"name": group.name})
    return _back_to_groups(request, "group-created")


@router.post("/admin/groups/{group_id}/rename")
def rename_group(
    group_id: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    user: AdminWriterDep,
    name: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    with runtime.stores.session(tenant, write=True) as session:
        group = groups.access_group(session, parse_object_id(group_id, "group"))
        old_name = group.name
        groups.rename_group(session, group.id, name)
        _audit(
            session,
            request,
            tenant,
            user,
            "group_renamed",
            group.id,
            old={"name": old_name},
            new={"name": group.name},
        )
    return _back_to_groups(request, "group-renamed")


@router.post("/admin/groups/{group_id}/delete")
def delete_group(
    group_id: str, request: Request, runtime: RuntimeDep, tenant: TenantDep, user: AdminWriterDep
) -> Response:
    with runtime.stores.session(tenant, write=True) as session:
        group_uuid = parse_object_id(group_id, "group")
        members = [str(member.id) for member in groups.list_members(session, group_uuid)]
        group = groups.delete_group(session, group_uuid)
        _audit(
            session,
            request,
            tenant,
            user,
            "group_deleted",
            group.id,
            old={"name": group.name, "members": members},
        )
    return _back_to_groups(request, "group-deleted")


@router.post("/admin/groups/{group_id}/members")
def add_member(
    group_id: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    user: AdminWriterDep,
    user_id: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    with runtime.stores.session(tenant, write=True) as session:
        group_uuid = parse_object_id(group_id, "group")
        member_uuid = parse_object_id(user_id, "user")
        groups.add_member(session, group_uuid, member_uuid)
        _audit(
            session,
            request,
            tenant,
            user,
            "group_member_added",
            group_uuid,
            new={"user": str(member_uuid)},
        )
    return _back_to_groups(request, "member-added")


@router.post("/admin/groups/{group_id}/members/{user_id}/remove")
def remove_member(
    group_id: str,
    user_id: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    user: AdminWriterDep,
) -> Response:
    with runtime.stores.session(tenant, write=True) as session:
        group_uuid = parse_object_id(group_id, "group")
        member_uuid = parse_object_id(user_id, "user")
        groups.remove_member(session, group_uuid, member_uuid)
        _audit(
            session,
            request,
            tenant,
            user,
            "group_member_removed",
            group_uuid,
            old={"user": str(member_uuid)},
        )
    return _back_to_groups(request, "member-removed")


def _audit(
    session: TenantSession,
    request: Request,
    tenant: TenantInfo,
    user: SignedIn,
    action: str,
    group_id: uuid.UUID,
    **values: dict[str, Any],
) -> None:
    """Record a group change in the audit trail, in the change's own transaction."""
    actor = actor_of(request, user.identity.user_id)
    add_event(session, tenant, action, actor, target=Target("group", group_id), **values)
