"""The file browser: folders and files, upload, download, new folder, rename, move, delete.

Pages call the drive layer directly, in the same transactions as the REST
API does, so the browser needs no API token. Uploads come from our script
as the raw body of a PUT, streamed into an encrypted blob like an API upload.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Form, Query, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from strongroom.base.errors import InvalidInput
from strongroom.base.logging import get_logger
from strongroom.drive import copies, transfers
from strongroom.drive import files as drive_files
from strongroom.drive import trash as drive_trash
from strongroom.drive.files import Names, Preconditions
from strongroom.drive.models import FOLDER, NodeRow
from strongroom.drive.paths import check_name, join_path, split_path
from strongroom.interfaces.api.dependencies import RuntimeDep, TenantDep
from strongroom.interfaces.api.files import stream_content, upload_file
from strongroom.interfaces.web.auth import UserDep, WriterDep
from strongroom.interfaces.web.pages import render
from strongroom.interfaces.web.routing import WebRoute, redirect
from strongroom.interfaces.web.security import DOWNLOAD_POLICY, base_path
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.modules import VERSIONING, check_module

log = get_logger(__name__)

router = APIRouter(route_class=WebRoute, include_in_schema=False)

SORT_KEYS = ("name", "size", "modified")


# Pages --------------------------------------------------------------------------------


def _entry(node: NodeRow, names: Names) -> dict[str, Any]:
    return {
        "name": node.name,
        "kind": node.kind,
        "size": node.size if node.kind != FOLDER else None,
        "modified": node.modified_at,
        "path": join_path([*names, node.name]),
    }


def _sorted(entries: list[dict[str, Any]], sort: str, descending: bool) -> list[dict[str, Any]]:
    """Sort by the column asked for, folders always before files."""
    def value(entry: dict[str, Any]) -> Any:
        if sort == "size":
            return entry["size"] or 0
        if sort == "modified":
            return entry["modified"]
        return entry["name"].casefold()

    folders = sorted((e for e in entries if e["kind"] == FOLDER), key=value, reverse=descending)
    others = sorted((e for e in entries if e["kind"] != FOLDER), key=value, reverse=descending)
    return folders + others


def _crumbs(names: Names) -> list[dict[str, str]]:
    return [{"name": name, "path": join_path(names[: depth + 1])} for depth, name in enumerate(names)]


@router.get("/files/{path:path}")
def browse(
    path: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    user: UserDep,
    sort: str = "name",
    order: str = "asc",
) -> Response:
    names = split_path(path)
    sort = sort if sort in SORT_KEYS else "name"
    descending = order == "desc"
    owner_id = user.identity.user_id
    if not names:
        _ensure_drive(runtime, tenant, owner_id)
    with runtime.stores.session(tenant) as session:
        node = drive_files.access_node(session, owner_id, names)
        if node.kind != FOLDER:
            return _file_page(request, session, node, names)
        entries = [_entry(child, names) for child in drive_files.list_children(session, node)]
    context = {
        "title": names[-1] if names else "Files",
        "path": join_path(names),
        "crumbs": _crumbs(names),
        "entries": _sorted(entries, sort, descending),
        "sort": sort,
        "order": "desc" if descending else "asc",
        "section": "files",
    }
    return render(request, "folder.html", context)


def _ensure_drive(runtime: Runtime, tenant: TenantInfo, owner_id: uuid.UUID) -> None:
    """Create the root folder of a user's drive on their first visit, before any upload."""
    with runtime.stores.session(tenant) as session:
        if drive_files.get_root(session, owner_id) is not None:
            return
    with runtime.stores.session(tenant, write=True) as session:
        drive_files.ensure_root(session, owner_id)


def _file_page(request: Request, session: Any, node: NodeRow, names: Names) -> Response:
    tenant: TenantInfo = request.scope["state"]["tenant"]
    # With versioning off, only the current version is shown, as the API lists none.
    stored = drive_files.list_versions(session, node)
    versions = [
        {"number": v.number, "size": v.size, "created": v.created_at, "sha256": v.sha256}
        for v in reversed(stored)
        if VERSIONING in tenant.modules or v.number == node.version
    ]
    context = {
        "title": node.name,
        "path": join_path(names),
        "parent": join_path(names[:-1]),
        "crumbs": _crumbs(names),
        "file": _entry(node, names[:-1]),
        "current": node.version,
        "versions": versions,
        "section": "files",
    }
    return render(request, "file.html", context)


# Upload and download ------------------------------------------------------------------


@router.put("/upload/{path:path}")
async def upload(
    path: str, request: Request, runtime: RuntimeDep, tenant: TenantDep, user: WriterDep
) -> Response:
    names = split_path(path)
    if not names:
        raise InvalidInput("an upload needs a file name at the end of its path")
    declared = request.headers.get("content-length")
    size = int(declared) if declared and declared.isascii() and declared.isdigit() else None
    slot = await runtime.fair_share.acquire_transfer(tenant)
    try:
        node, version = await upload_file(
            request,
            runtime,
            tenant,
            user.identity.user_id,
            user.identity.user_id,
            names,
            Preconditions(),
            size,
            slot,
        )
    finally:
        await slot.release()
    runtime.meter.record_upload(tenant, version.size)
    log.info("file_stored", node_id=str(node.id), version=version.number, size=version.size)
    body = {"path": join_path(names), "version": version.number, "size": version.size}
    return JSONResponse(body, status_code=201 if version.number == 1 else 200)


def content_disposition(name: str) -> str:
    """Return an attachment header that keeps any file name intact (RFC 6266, RFC 8187)."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.get("/download/{path:path}")
async def download(
    path: str,
    runtime: RuntimeDep,
    tenant: TenantDep,
    user: UserDep,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    names = split_path(path)
    owner_id = user.identity.user_id
    if version is not None:
        check_module(tenant, VERSIONING)
    if version is None:
        opened = await anyio.to_thread.run_sync(
            transfers.open_download, runtime, tenant, owner_id, names
        )
    else:
        opened = await anyio.to_thread.run_sync(
            transfers.open_version_download, runtime, tenant, owner_id, names, version
        )
    size = opened.blob.size
    body = await stream_content(runtime, tenant, opened, 0, max(size - 1, 0))
    headers = {
        "Content-Disposition": content_disposition(names[-1]),
        "Content-Length": str(size),
        "ETag": opened.etag,
        "Content-Security-Policy": DOWNLOAD_POLICY,
        "Cache-Control": "private, no-store",
    }
    return StreamingResponse(body, headers=headers, media_type="application/octet-stream")


# Changes ------------------------------------------------------------------------------


def _back_to(request: Request, folder: Names, done: str) -> Response:
    return redirect(request, f"{base_path(request)}/files/{quote(join_path(folder))}?done={done}")


@router.post("/new-folder/{path:path}")
def new_folder(
    path: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    user: WriterDep,
    name: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    parent = split_path(path)
    target = (*parent, check_name(name))
    with runtime.stores.session(tenant, write=True) as session:
        drive_files.make_folder(session, user.identity.user_id, target, user.identity.user_id)
    return _back_to(request, parent, "folder-created")


def _moved(
    runtime: Runtime, tenant: TenantInfo, source: Names, destination: Names, user_id: Any
) -> None:
    with runtime.stores.session(tenant, write=True) as session:
        # A rename must not give a file an ending that uploads may not have.
        if drive_files.access_node(session, user_id, source).kind != FOLDER:
            transfers.check_file_allowed(tenant, destination[-1])
        drive_files.move_node(
            session, user_id, source, destination, overwrite=False, user_id=user_id
        )


@router.post("/rename/{path:path}")
def rename(
    path: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    user: WriterDep,
    name: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    source = split_path(path)
    if not source:
        raise InvalidInput("the root folder cannot be renamed")
    _moved(runtime, tenant, source, (*source[:-1], check_name(name)), user.identity.user_id)
    return _back_to(request, source[:-1], "renamed")


@router.post("/move/{path:path}")
def move(
    path: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    user: WriterDep,
    destination: Annotated[str, Form(max_length=5000)] = "",
) -> Response:
    source = split_path(path)
    if not source:
        raise InvalidInput("the root folder cannot be moved")
    folder = split_path(destination)
    _moved(runtime, tenant, source, (*folder, source[-1]), user.identity.user_id)
    return _back_to(request, source[:-1], "moved")


@router.post("/delete/{path:path}")
def delete(
    path: str, request: Request, runtime: RuntimeDep, tenant: TenantDep, user: WriterDep
) -> Response:
    names = split_path(path)
    with runtime.stores.session(tenant, write=True) as session:
        owner_id = user.identity.user_id
        node = drive_files.access_node(session, owner_id, names)
        drive_trash.trash_node(session, owner_id, names, owner_id, node.kind)
    return _back_to(request, names[:-1], "deleted")


@router.post("/restore-version/{path:path}")
async def restore_version(
    path: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    user: WriterDep,
    number: Annotated[int, Form(ge=1, le=2**31 - 1)],
) -> Response:
    names = split_path(path)
    owner_id = user.identity.user_id
    check_module(tenant, VERSIONING)
    _node, version = await anyio.to_thread.run_sync(
        copies.restore_version, runtime, tenant, owner_id, names, number, owner_id
    )
    runtime.meter.record_upload(tenant, version.size)
    target = f"{base_path(request)}/files/{quote(join_path(names))}"
    return redirect(request, f"{target}?done=version-restored")
