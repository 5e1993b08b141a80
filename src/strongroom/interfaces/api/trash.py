"""Trash routes for the caller's own drive: list, restore, purge one item, empty."""

from __future__ import annotations

import anyio
from fastapi import APIRouter

from strongroom.drive import files as drive_files
from strongroom.drive import transfers
from strongroom.drive import trash as drive_trash
from strongroom.interfaces.api.dependencies import (
    API_PREFIX,
    PrincipalDep,
    RuntimeDep,
    TenantDep,
    parse_object_id,
)
from strongroom.interfaces.api.schemas import NodeOut, PurgeResult, TrashItem, TrashListing, utc

router = APIRouter(prefix=API_PREFIX, tags=["trash"])


@router.get("/trash", response_model=TrashListing, summary="List what is in the trash")
def list_trash(runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep) -> TrashListing:
    with runtime.stores.session(tenant) as session:
        items = [
            TrashItem(
                id=node.id,
                name=node.name,
                type=node.kind,
                original_path=drive_files.path_of(session, node),
                size=node.size if node.kind == "file" else None,
                deleted=utc(node.deleted_at),
            )
            for node in drive_trash.list_trash(session, principal.user_id)
        ]
    return TrashListing(items=items)


@router.post(
    "/trash/{item_id}/restore", response_model=NodeOut, summary="Put an item back where it was"
)
def restore(item_id: str, runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep) -> NodeOut:
    with runtime.stores.session(tenant, write=True) as session:
        node = drive_trash.restore_node(
            session, principal.user_id, parse_object_id(item_id, "trash item")
        )
        path = drive_files.path_of(session, node)
        sha256 = drive_files.current_sha256(session, node)
    return NodeOut.of(node, path, sha256)


@router.delete(
    "/trash/{item_id}",
    response_model=PurgeResult,
    summary="Delete an item and its versions for good",
)
async def purge(
    item_id: str, runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep
) -> PurgeResult:
    node_id = parse_object_id(item_id, "trash item")
    purged = await anyio.to_thread.run_sync(
        transfers.purge, runtime, tenant, principal.user_id, node_id
    )
    return PurgeResult(items_removed=purged.nodes, bytes_freed=purged.bytes)


@router.delete("/trash", response_model=PurgeResult, summary="Empty the trash")
async def empty(runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep) -> PurgeResult:
    purged = await anyio.to_thread.run_sync(
        transfers.empty_trash, runtime, tenant, principal.user_id
    )
    return PurgeResult(items_removed=purged.nodes, bytes_freed=purged.bytes)
