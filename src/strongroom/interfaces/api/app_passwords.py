"""The caller's app passwords, which WebDAV clients send with the caller's e-mail address."""

from __future__ import annotations

from fastapi import APIRouter, Request

from strongroom.identity import app_passwords
from strongroom.identity.models import AppPasswordRow
from strongroom.identity.users import get_user
from strongroom.interfaces.api.dependencies import (
    API_PREFIX,
    PrincipalDep,
    RuntimeDep,
    TenantDep,
    actor_of,
    parse_object_id,
    require_module,
)
from strongroom.interfaces.api.schemas import (
    AppPasswordCreate,
    AppPasswordCreated,
    AppPasswordListing,
    AppPasswordOut,
    utc,
)
from strongroom.tenancy.events import Target, add_event
from strongroom.tenancy.modules import WEBDAV

# App passwords serve WebDAV only, so they close with its module.
router = APIRouter(
    prefix=f"{API_PREFIX}/me/app-passwords",
    tags=["account"],
    dependencies=[require_module(WEBDAV)],
)


def _app_password_out(row: AppPasswordRow) -> AppPasswordOut:
    return AppPasswordOut(
        id=row.id,
        name=row.name,
        created=utc(row.created_at),
        last_used=utc(row.last_used_at) if row.last_used_at else None,
        revoked=utc(row.revoked_at) if row.revoked_at else None,
    )


@router.get("", response_model=AppPasswordListing, summary="List my app passwords")
def list_app_passwords(
    runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep
) -> AppPasswordListing:
    with runtime.stores.session(tenant) as session:
        rows = app_passwords.list_app_passwords(session, principal.user_id)
    return AppPasswordListing(items=[_app_password_out(row) for row in rows])


@router.post(
    "",
    response_model=AppPasswordCreated,
    status_code=201,
    summary="Create an app password for a WebDAV client",
)
def create_app_password(
    request: AppPasswordCreate,
    http_request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    principal: PrincipalDep,
) -> AppPasswordCreated:
    with runtime.stores.session(tenant, write=True) as session:
        user = get_user(session, principal.user_id)
        assert user is not None, "an authenticated user exists"
        row, secret = app_passwords.create_app_password(session, user, request.name)
        add_event(
            session,
            tenant,
            "app_password_created",
            actor_of(http_request, principal.user_id),
            target=Target("app_password", row.id),
            new=app_passwords.audited(row),
        )
    return AppPasswordCreated(**_app_password_out(row).model_dump(), password=secret)


@router.delete(
    "/{app_password_id}", response_model=AppPasswordOut, summary="Revoke one of my app passwords"
)
def revoke_app_password(
    app_password_id: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    principal: PrincipalDep,
) -> AppPasswordOut:
    parsed = parse_object_id(app_password_id, "app password")
    with runtime.stores.session(tenant, write=True) as session:
        row = app_passwords.revoke_app_password(session, parsed, principal.user_id)
        add_event(
            session,
            tenant,
            "app_password_revoked",
            actor_of(request, principal.user_id),
            target=Target("app_password", row.id),
            old=app_passwords.audited(row),
        )
    return _app_password_out(row)
