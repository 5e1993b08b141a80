"""The tenant's directory: its active users and its groups, which members share with.

Every member lists users and groups, but only admins see guests in the user
list: a member finds the guests they invited at GET /api/v1/guests. Guests
reach neither list. tenant admins create, rename and delete
groups and choose their members. An id of another tenant is not found,
exactly like an id that does not exist.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from strongroom.identity import groups
from strongroom.identity.models import GroupRow, UserRow
from strongroom.identity.users import list_users
from strongroom.interfaces.api.dependencies import (
    API_PREFIX,
    AdminDep,
    PrincipalDep,
    RuntimeDep,
    TenantDep,
    actor_of,
    parse_object_id,
)
from strongroom.interfaces.api.schemas import (
    GroupCreate,
    GroupListing,
    GroupOut,
    GroupRename,
    GroupSummary,
    UserBrief,
    UserListing,
    utc,
)
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.events import Target, add_event

router = APIRouter(prefix=API_PREFIX, tags=["directory"])


def user_brief(user: UserRow) -> UserBrief:
    return UserBrief(id=user.id, email=user.email, display_name=user.display_name)


@router.get("/users", response_model=UserListing, summary="List the tenant's active users")
def list_active_users(runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep) -> UserListing:
    with runtime.stores.session(tenant) as session:
        users = list_users(session, active_only=True, with_guests=principal.is_admin)
    return UserListing(items=[user_brief(user) for user in users])


# Groups -------------------------------------------------------------------------------


def _group_out(runtime: Runtime, tenant: TenantInfo, group_id: uuid.UUID) -> GroupOut:
    with runtime.stores.session(tenant) as session:
        group = groups.access_group(session, group_id)
        members = groups.list_members(session, group.id)
    return _out(group, members)


def _out(group: GroupRow, members: list[UserRow]) -> GroupOut:
    return GroupOut(
        id=group.id,
        name=group.name,
        created=utc(group.created_at),
        members=[user_brief(user) for user in members],
    )


@router.get("/groups", response_model=GroupListing, summary="List the tenant's groups")
def list_groups(runtime: RuntimeDep, tenant: TenantDep, _principal: PrincipalDep) -> GroupListing:
    with runtime.stores.session(tenant) as session:
        found = groups.list_groups(session)
    return GroupListing(
        items=[GroupSummary(id=group.id, name=group.name, members=count) for group, count in found]
    )


@router.post(
    "/groups", response_model=GroupOut, status_code=201, summary="Create a group; admins only"
)
def create_group(
    request: GroupCreate, http_request: Request, runtime: RuntimeDep, tenant: TenantDep, admin: AdminDep
) -> GroupOut:
    with runtime.stores.session(tenant, write=True) as session:
        group = groups.create_group(session, request.name, admin.user_id)
        add_event(
            session,
            tenant,
            "group_created",
            actor_of(http_request, admin.user_id),
            target=Target("group", group.id),
            new={"name": group.name},
        )
    return _out(group, [])


@router.get("/groups/{group_id}", response_model=GroupOut, summary="A group and its members")
def get_group(
    group_id: str, runtime: RuntimeDep, tenant: TenantDep, _principal: PrincipalDep
) -> GroupOut:
    return _group_out(runtime, tenant, parse_object_id(group_id, "group"))


@router.patch("/groups/{group_id}", response_model=GroupOut, summary="Rename a group; admins only")
def rename_group(
    group_id: str,
    request: GroupRename,
    http_request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    admin: AdminDep,
) -> GroupOut:
    group_uuid = parse_object_id(group_id, "group")
    with runtime.stores.session(tenant, write=True) as session:
        old_name = groups.access_group(session, group_uuid).name
        group = groups.rename_group(session, group_uuid, request.name)
        members = groups.list_members(session, group.id)
        add_event(
            session,
            tenant,
            "group_renamed",
            actor_of(http_request, admin.user_id),
            target=Target("group", group.id),
            old={"name": old_name},
            new={"name": group.name},
        )
    return _out(group, members)


@router.delete(
    "/groups/{group_id}",
    response_model=GroupOut,
    summary="Delete a group, its memberships and the shares made with it; admins only",
)
def delete_group(
    group_id: str, request: Request, runtime: RuntimeDep, tenant: TenantDep, admin: AdminDep
) -> GroupOut:
    with runtime.stores.session(tenant, write=True) as session:
        group = groups.access_group(session, parse_object_id(group_id, "group"))
        members = groups.list_members(session, group.id)
        groups.delete_group(session, group.id)
        add_event(
            session,
            tenant,
            "group_deleted",
            actor_of(request, admin.user_id),
            target=Target("group", group.id),
            old={"name": group.name, "members": [str(user.id) for user in members]},
        )
    return _out(group, members)


@router.put(
    "/groups/{group_id}/members/{user_id}",
    response_model=GroupOut,
    summary="Add an active user to a group; admins only",
)
def add_member(
    group_id: str,
    user_id: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    admin: AdminDep,
) -> GroupOut:
    group_uuid = parse_object_id(group_id, "group")
    member_uuid = parse_object_id(user_id, "active user")
    with runtime.stores.session(tenant, write=True) as session:
        already = groups.is_member(session, group_uuid, member_uuid)
        groups.add_member(session, group_uuid, member_uuid)
        # Adding a member again changes nothing, so it records nothing either.
        if not already:
            add_event(
                session,
                tenant,
                "group_member_added",
                actor_of(request, admin.user_id),
                target=Target("group", group_uuid),
                new={"user": str(member_uuid)},
            )
    return _group_out(runtime, tenant, group_uuid)


@router.delete(
    "/groups/{group_id}/members/{user_id}",
    response_model=GroupOut,
    summary="Remove a member from a group; admins only",
)
def remove_member(
    group_id: str,
    user_id: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    admin: AdminDep,
) -> GroupOut:
    group_uuid = parse_object_id(group_id, "group")
    member_uuid = parse_object_id(user_id, "group member")
    with runtime.stores.session(tenant, write=True) as session:
        groups.remove_member(session, group_uuid, member_uuid)
        add_event(
            session,
            tenant,
            "group_member_removed",
            actor_of(request, admin.user_id),
            target=Target("group", group_uuid),
            old={"user": str(member_uuid)},
        )
    return _group_out(runtime, tenant, group_uuid)
