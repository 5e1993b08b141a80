"""The caller's own account: who am I, my usage, my API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Request

from strongroom.identity import tokens
from strongroom.identity.models import TokenRow
from strongroom.identity.users import get_user
from strongroom.interfaces.api.confinement import open_to_guests
from strongroom.interfaces.api.dependencies import (
    API_PREFIX,
    PrincipalDep,
    RuntimeDep,
    TenantDep,
    actor_of,
    parse_object_id,
)
from strongroom.interfaces.api.schemas import (
    TokenCreate,
    TokenCreated,
    TokenListing,
    TokenOut,
    UsageOut,
    UserOut,
    utc,
)
from strongroom.tenancy.events import Target, add_event
from strongroom.tenancy.usage import get_usage

router = APIRouter(prefix=API_PREFIX, tags=["account"])


def _token_out(row: TokenRow) -> TokenOut:
    return TokenOut(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        created=utc(row.created_at),
        expires=utc(row.expires_at) if row.expires_at else None,
        last_used=utc(row.last_used_at) if row.last_used_at else None,
        revoked=utc(row.revoked_at) if row.revoked_at else None,
    )


@router.get("/me", response_model=UserOut, summary="The user the token acts as")
@open_to_guests
def me(runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep) -> UserOut:
    with runtime.stores.session(tenant) as session:
        user = get_user(session, principal.user_id)
        assert user is not None, "an authenticated user exists"
        return UserOut(
            id=user.id,
            email=user.email,
            role=user.role,
            tenant=tenant.slug,
            expires=utc(user.expires_at) if user.expires_at else None,
        )


@router.get("/usage", response_model=UsageOut, summary="Bytes stored and the tenant's quota")
def usage(runtime: RuntimeDep, tenant: TenantDep, _principal: PrincipalDep) -> UsageOut:
    with runtime.stores.session(tenant) as session:
        used = get_usage(session)
    return UsageOut(used_bytes=used, quota_bytes=tenant.quota_bytes)


@router.get("/tokens", response_model=TokenListing, summary="List my API tokens")
def list_tokens(runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep) -> TokenListing:
    with runtime.stores.session(tenant) as session:
        rows = tokens.list_tokens(session, principal.user_id)
    return TokenListing(items=[_token_out(row) for row in rows])


@router.post("/tokens", response_model=TokenCreated, status_code=201, summary="Create an API token")
def create_token(
    request: TokenCreate,
    http_request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    principal: PrincipalDep,
) -> TokenCreated:
    with runtime.stores.session(tenant, write=True) as session:
        user = get_user(session, principal.user_id)
        assert user is not None, "an authenticated user exists"
        row, secret = tokens.create_token(session, user, request.name, request.expires_in_days)
        add_event(
            session,
            tenant,
            "token_created",
            actor_of(http_request, principal.user_id),
            target=Target("token", row.id),
            new=tokens.audited(row),
        )
    return TokenCreated(**_token_out(row).model_dump(), token=secret)


@router.delete("/tokens/{token_id}", response_model=TokenOut, summary="Revoke one of my tokens")
def revoke_token(
    token_id: str, request: Request, runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep
) -> TokenOut:
    with runtime.stores.session(tenant, write=True) as session:
        row = tokens.revoke_token(session, parse_object_id(token_id, "token"), principal.user_id)
        add_event(
            session,
            tenant,
            "token_revoked",
            actor_of(request, principal.user_id),
            target=Target("token", row.id),
            old=tokens.audited(row),
        )
    # Revocations are rare, so dropping every cached token costs less than indexing them by id.
    runtime.tokens.clear()
    return _token_out(row)
