"""Internal shares: what a member shares from their drive, and what others shared with them.

The owner of a drive shares a file or folder with an active user or a group
of the tenant, to read or to write, and changes or revokes that share. Its
recipients find it under "shared with me" and reach it through
`/shares/{share_id}/files/{path}` and `/shares/{share_id}/folders/{path}`,
whose paths start at the shared item: the empty path is the item itself.
These routes behave as the own-drive routes do, on a read share for reading
only. Every share route looks the share up again, so a revoked share, a
member removed from its group or an item in the trash stops access at once.
The recipient's routes are the only ones, besides /me, that guests reach.
"""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request, Response

from strongroom.drive import files as drive_files
from strongroom.drive import listing
from strongroom.drive import shares as drive_shares
from strongroom.drive import trash as drive_trash
from strongroom.drive.models import FILE, FOLDER, ShareRow
from strongroom.drive.paths import join_path, split_path
from strongroom.drive.shares import Recipient, SharedItem
from strongroom.identity.groups import access_group
from strongroom.identity.tokens import Principal
from strongroom.identity.users import get_user
from strongroom.interfaces import webhook_events
from strongroom.interfaces.api.confinement import open_to_guests
from strongroom.interfaces.api.dependencies import (
    API_PREFIX,
    PrincipalDep,
    RuntimeDep,
    TenantDep,
    actor_of,
    parse_object_id,
)
from strongroom.interfaces.api.directory import user_brief
from strongroom.interfaces.api.files import receive_file, request_preconditions, send_file
from strongroom.interfaces.api.schemas import (
    FolderListing,
    GroupBrief,
    NodeOut,
    RecipientOut,
    ShareCreate,
    SharedItemOut,
    SharedWithMeListing,
    ShareListing,
    ShareOut,
    ShareUpdate,
    listing_json,
    utc,
)
from strongroom.runtime import Runtime
from strongroom.storage.db import TenantSession
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.events import Target, add_event

router = APIRouter(prefix=API_PREFIX, tags=["shares"])


# The owner's side ---------------------------------------------------------------------


def _share_out(session: TenantSession, share: ShareRow) -> ShareOut:
    node = drive_shares.shared_node(session, share)
    if share.user_id is not None:
        user = get_user(session, share.user_id)
        assert user is not None, "a share's user exists, by its foreign key"
        recipient = RecipientOut(type="user", id=user.id, name=user.email)
    else:
        group = access_group(session, share.group_id)  # type: ignore[arg-type]
        recipient = RecipientOut(type="group", id=group.id, name=group.name)
    return ShareOut(
        id=share.id,
        path=drive_files.path_of(session, node),
        name=node.name,
        type=node.kind,
        permission=share.permission,  # type: ignore[arg-type]
        recipient=recipient,
        trashed=drive_files.is_trashed(session, node),
        created=utc(share.created_at),
        modified=utc(share.modified_at),
    )


@router.post("/shares", response_model=ShareOut, status_code=201, summary="Share a file or folder")
def create_share(
    request: ShareCreate,
    http_request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    principal: PrincipalDep,
) -> ShareOut:
    recipient = Recipient(user_id=request.user_id, group_id=request.group_id)
    with runtime.stores.session(tenant, write=True) as session:
        share = drive_shares.create_share(
            session, principal.user_id, split_path(request.path), recipient, request.permission
        )
        add_event(
            session,
            tenant,
            "share_created",
            actor_of(http_request, principal.user_id),
            target=Target("share", share.id),
            new=audited_share(share),
        )
        created = _share_out(session, share)
        node = drive_shares.shared_node(session, share)
    webhook_events.share_created(runtime, tenant, share, node, created.path, principal.user_id)
    return created


@router.get("/shares", response_model=ShareListing, summary="List the shares of my files")
def list_shares(runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep) -> ShareListing:
    with runtime.stores.session(tenant) as session:
        found = drive_shares.list_own_shares(session, principal.user_id)
        return ShareListing(items=[_share_out(session, share) for share in found])


@router.get("/shares/{share_id}", response_model=ShareOut, summary="One share of my files")
def get_share(
    share_id: str, runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep
) -> ShareOut:
    with runtime.stores.session(tenant) as session:
        share = drive_shares.access_own_share(
            session, principal.user_id, parse_object_id(share_id, "share")
        )
        return _share_out(session, share)


@router.patch("/shares/{share_id}", response_model=ShareOut, summary="Change a share's permission")
def update_share(
    share_id: str,
    request: ShareUpdate,
    http_request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    principal: PrincipalDep,
) -> ShareOut:
    share_uuid = parse_object_id(share_id, "share")
    with runtime.stores.session(tenant, write=True) as session:
        before = audited_share(drive_shares.access_own_share(session, principal.user_id, share_uuid))
        share = drive_shares.update_share(
            session, principal.user_id, share_uuid, request.permission
        )
        after = audited_share(share)
        if after != before:
            add_event(
                session,
                tenant,
                "share_changed",
                actor_of(http_request, principal.user_id),
                target=Target("share", share.id),
                old=before,
                new=after,
            )
        return _share_out(session, share)


@router.delete(
    "/shares/{share_id}", response_model=ShareOut, summary="Revoke a share; access stops at once"
)
def revoke_share(
    share_id: str, request: Request, runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep
) -> ShareOut:
    with runtime.stores.session(tenant, write=True) as session:
        share = drive_shares.access_own_share(
            session, principal.user_id, parse_object_id(share_id, "share")
        )
        revoked = _share_out(session, share)
        audited = audited_share(share)
        drive_shares.revoke_share(session, principal.user_id, share.id)
        add_event(
            session,
            tenant,
            "share_deleted",
            actor_of(request, principal.user_id),
            target=Target("share", share.id),
            old=audited,
        )
    return revoked


def audited_share(share: ShareRow) -> dict[str, str | None]:
    """Return a share as the audit trail records it: ids and the permission, no names."""
    return {
        "node": str(share.node_id),
        "user": str(share.user_id) if share.user_id else None,
        "group": str(share.group_id) if share.group_id else None,
        "permission": share.permission,
    }


# The recipient's side -----------------------------------------------------------------


@router.get(
    "/shared-with-me",
    response_model=SharedWithMeListing,
    summary="List what others shared with me, directly or through a group",
)
@open_to_guests
def shared_with_me(
    runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep
) -> SharedWithMeListing:
    with runtime.stores.session(tenant) as session:
        found = drive_shares.list_shared_with(session, principal.user_id)
    return SharedWithMeListing(items=[_shared_item_out(item) for item in found])


def _shared_item_out(item: drive_shares.SharedWithMe) -> SharedItemOut:
    node, owner = item.node, item.owner
    return SharedItemOut(
        id=item.share.id,
        name=node.name,
        type=node.kind,
        size=node.size if node.kind == FILE else None,
        modified=utc(node.modified_at),
        permission=item.share.permission,  # type: ignore[arg-type]
        owner=user_brief(owner),
        group=GroupBrief(id=item.group.id, name=item.group.name) if item.group else None,
        shared=utc(item.share.created_at),
    )


def _reach(
    runtime: Runtime, tenant: TenantInfo, principal: Principal, share_id: str, write: bool
) -> SharedItem:
    """Return the share as the principal reaches it; for `write`, raise unless it allows writing."""
    with runtime.stores.session(tenant) as session:
        item = drive_shares.access_share(
            session, principal.user_id, parse_object_id(share_id, "share")
        )
    if write:
        item.check_writable()
    return item


async def _reach_async(
    runtime: Runtime, tenant: TenantInfo, principal: Principal, share_id: str, write: bool
) -> SharedItem:
    return await anyio.to_thread.run_sync(_reach, runtime, tenant, principal, share_id, write)


@router.get(
    "/shares/{share_id}/files/{path:path}",
    summary="Download a shared file, or a file in a shared folder; honours Range",
)
@open_to_guests
async def get_shared_file(
    share_id: str,
    path: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    principal: PrincipalDep,
) -> Response:
    names = split_path(path)
    item = await _reach_async(runtime, tenant, principal, share_id, write=False)
    return await send_file(request, runtime, tenant, names, item.owner_id, True, item.node.id)


@router.head(
    "/shares/{share_id}/files/{path:path}", summary="The headers of a shared file's download"
)
@open_to_guests
async def head_shared_file(
    share_id: str,
    path: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    principal: PrincipalDep,
) -> Response:
    names = split_path(path)
    item = await _reach_async(runtime, tenant, principal, share_id, write=False)
    return await send_file(request, runtime, tenant, names, item.owner_id, False, item.node.id)


@router.put(
    "/shares/{share_id}/files/{path:path}",
    response_model=NodeOut,
    summary="Create or replace a file through a write share",
    responses={201: {"model": NodeOut, "description": "the file was created"}},
)
@open_to_guests
async def put_shared_file(
    share_id: str,
    path: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    principal: PrincipalDep,
) -> Response:
    names = split_path(path)
    item = await _reach_async(runtime, tenant, principal, share_id, write=True)
    return await receive_file(
        request, runtime, tenant, names, item.owner_id, principal.user_id, item.node.id
    )


@router.delete(
    "/shares/{share_id}/files/{path:path}",
    response_model=NodeOut,
    summary="Move a file of a shared folder to its owner's trash, through a write share",
)
@open_to_guests
def delete_shared_file(
    share_id: str,
    path: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    principal: PrincipalDep,
) -> NodeOut:
    names = split_path(path)
    item = _reach(runtime, tenant, principal, share_id, write=True)
    preconditions = request_preconditions(request)
    with runtime.stores.session(tenant, write=True) as session:
        node = drive_trash.trash_node(
            session, item.owner_id, names, principal.user_id, FILE, preconditions, item.node.id
        )
        sha256 = drive_files.current_sha256(session, node)
    webhook_events.file_trashed(runtime, tenant, node, principal.user_id)
    return NodeOut.of(node, join_path(names), sha256)


@router.get(
    "/shares/{share_id}/folders/{path:path}",
    response_model=FolderListing,
    response_class=Response,
    summary="List a shared folder, or a folder in it; '' is the shared folder",
)
@open_to_guests
async def list_shared_folder(
    share_id: str, path: str, runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep
) -> Response:
    names = split_path(path)
    item = await _reach_async(runtime, tenant, principal, share_id, write=False)
    found = await anyio.to_thread.run_sync(_read_listing, runtime, tenant, item, names)
    return Response(listing_json(found), media_type="application/json")


def _read_listing(
    runtime: Runtime, tenant: TenantInfo, item: SharedItem, names: tuple[str, ...]
) -> listing.Listing:
    with runtime.stores.connect(tenant) as connection:
        return listing.list_folder(connection, tenant.id, item.owner_id, names, item.node.id)


@router.post(
    "/shares/{share_id}/folders/{path:path}",
    response_model=NodeOut,
    status_code=201,
    summary="Create a folder in a shared folder, through a write share",
)
@open_to_guests
def make_shared_folder(
    share_id: str, path: str, runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep
) -> NodeOut:
    names = split_path(path)
    item = _reach(runtime, tenant, principal, share_id, write=True)
    with runtime.stores.session(tenant, write=True) as session:
        folder = drive_files.make_folder(
            session, item.owner_id, names, principal.user_id, item.node.id
        )
    return NodeOut.of(folder, join_path(names))


@router.delete(
    "/shares/{share_id}/folders/{path:path}",
    response_model=NodeOut,
    summary="Move a folder of a shared folder to its owner's trash, through a write share",
)
@open_to_guests
def delete_shared_folder(
    share_id: str, path: str, runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep
) -> NodeOut:
    names = split_path(path)
    item = _reach(runtime, tenant, principal, share_id, write=True)
    with runtime.stores.session(tenant, write=True) as session:
        folder = drive_trash.trash_node(
            session, item.owner_id, names, principal.user_id, FOLDER, None, item.node.id
        )
    return NodeOut.of(folder, join_path(names))
