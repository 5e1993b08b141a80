"""The trash page: what was deleted, restoring it, and deleting it for good."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request
from starlette.responses import Response

from strongroom.drive import files as drive_files
from strongroom.drive import transfers
from strongroom.drive import trash as drive_trash
from strongroom.drive.models import FOLDER
from strongroom.interfaces.api.dependencies import RuntimeDep, TenantDep, parse_object_id
from strongroom.interfaces.web.auth import UserDep, WriterDep
from strongroom.interfaces.web.pages import render
from strongroom.interfaces.web.routing import WebRoute, redirect
from strongroom.interfaces.web.security import base_path

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/trash")
def trash_page(request: Request, runtime: RuntimeDep, tenant: TenantDep, user: UserDep) -> Response:
    owner_id = user.identity.user_id
    with runtime.stores.session(tenant) as session:
        items = [
            {
                "id": node.id,
                "name": node.name,
                "kind": node.kind,
                "size": node.size if node.kind != FOLDER else None,
                "original_path": drive_files.path_of(session, node),
                "deleted": node.deleted_at,
            }
            for node in drive_trash.list_trash(session, owner_id)
        ]
    return render(request, "trash.html", {"title": "Trash", "items": items, "section": "trash"})


def _back(request: Request, done: str) -> Response:
    return redirect(request, f"{base_path(request)}/trash?done={done}")


@router.post("/trash/{item_id}/restore")
def restore(
    item_id: str, request: Request, runtime: RuntimeDep, tenant: TenantDep, user: WriterDep
) -> Response:
    node_id = parse_object_id(item_id, "trash item")
    with runtime.stores.session(tenant, write=True) as session:
        drive_trash.restore_node(session, user.identity.user_id, node_id)
    return _back(request, "restored")


@router.post("/trash/{item_id}/purge")
async def purge(
    item_id: str, request: Request, runtime: RuntimeDep, tenant: TenantDep, user: WriterDep
) -> Response:
    node_id = parse_object_id(item_id, "trash item")
    await anyio.to_thread.run_sync(transfers.purge, runtime, tenant, user.identity.user_id, node_id)
    return _back(request, "purged")


@router.post("/trash/empty")
async def empty(request: Request, runtime: RuntimeDep, tenant: TenantDep, user: WriterDep) -> Response:
    await anyio.to_thread.run_sync(transfers.empty_trash, runtime, tenant, user.identity.user_id)
    return _back(request, "emptied")
