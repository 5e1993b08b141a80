"""Pages of the shares with the signed-in user: the list, shared folders, and downloads.

These are the only pages besides logout that guests open. Each request looks
the share up again through drive/shares.py, so a revoked share or a trashed
item stops access at once, exactly as on the REST API.
"""

from __future__ import annotations

import uuid
from typing import Any

import anyio
from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from strongroom.base.errors import NotFound
from strongroom.drive import files as drive_files
from strongroom.drive import shares as drive_shares
from strongroom.drive import transfers
from strongroom.drive.models import FOLDER
from strongroom.drive.paths import join_path, split_path
from strongroom.drive.shares import SharedItem
from strongroom.interfaces.api.confinement import open_to_guests
from strongroom.interfaces.api.dependencies import RuntimeDep, TenantDep
from strongroom.interfaces.api.files import stream_content
from strongroom.interfaces.web.auth import UserDep
from strongroom.interfaces.web.browser import content_disposition
from strongroom.interfaces.web.pages import render
from strongroom.interfaces.web.routing import WebRoute
from strongroom.interfaces.web.security import DOWNLOAD_POLICY
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def _share_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFound(f"no share with you has the id {text!r}") from None


def _reach(runtime: Runtime, tenant: TenantInfo, user_id: uuid.UUID, share_id: str) -> SharedItem:
    with runtime.stores.session(tenant) as session:
        return drive_shares.access_share(session, user_id, _share_id(share_id))


@router.get("/shared/")
@open_to_guests
def shared_with_me(
    request: Request, runtime: RuntimeDep, tenant: TenantDep, user: UserDep
) -> Response:
    with runtime.stores.session(tenant) as session:
        found = drive_shares.list_shared_with(session, user.identity.user_id)
    items = [
        {
            "share_id": str(item.share.id),
            "name": item.node.name,
            "kind": item.node.kind,
            "size": item.node.size if item.node.kind != FOLDER else None,
            "owner": item.owner.display_name or item.owner.email,
            "permission": item.share.permission,
        }
        for item in found
    ]
    context = {"title": "Shared with me", "items": items, "section": "shared"}
    return render(request, "shared.html", context)


@router.get("/shared/{share_id}/{path:path}")
@open_to_guests
def shared_folder(
    share_id: str,
    path: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    user: UserDep,
) -> Response:
    names = split_path(path)
    item = _reach(runtime, tenant, user.identity.user_id, share_id)
    with runtime.stores.session(tenant) as session:
        node = drive_files.access_node(session, item.owner_id, names, None, item.node.id)
        if node.kind == FOLDER:
            entries = [_entry(child, names) for child in drive_files.list_children(session, node)]
        else:
            # A shared file, or a file in a shared folder: its one entry downloads its own path.
            entries = [{**_entry(node, ()), "path": join_path(names)}]
    context = {
        "title": node.name,
        "share_id": share_id,
        "path": join_path(names),
        "entries": sorted(entries, key=lambda entry: (entry["kind"] != FOLDER, entry["name"].casefold())),
        "section": "shared",
    }
    return render(request, "shared_folder.html", context)


def _entry(node: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {
        "name": node.name,
        "kind": node.kind,
        "size": node.size if node.kind != FOLDER else None,
        "modified": node.modified_at,
        "path": join_path([*names, node.name]),
    }


@router.get("/shared-download/{share_id}/{path:path}")
@open_to_guests
async def shared_download(
    share_id: str, path: str, runtime: RuntimeDep, tenant: TenantDep, user: UserDep
) -> Response:
    names = split_path(path)
    item = await anyio.to_thread.run_sync(_reach, runtime, tenant, user.identity.user_id, share_id)
    opened = await anyio.to_thread.run_sync(
        transfers.open_download, runtime, tenant, item.owner_id, names, item.node.id
    )
    size = opened.blob.size
    body = await stream_content(runtime, tenant, opened, 0, max(size - 1, 0))
    headers = {
        "Content-Disposition": content_disposition(opened.node.name),
        "Content-Length": str(size),
        "ETag": opened.etag,
        "Content-Security-Policy": DOWNLOAD_POLICY,
        "Cache-Control": "private, no-store",
    }
    return StreamingResponse(body, headers=headers, media_type="application/octet-stream")
