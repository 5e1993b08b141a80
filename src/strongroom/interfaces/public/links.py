"""The pages and downloads of public links, under `{base}/s/{token}`.

- `GET /s/{token}`: a page for browsers (the file, or the folder's listing),
  JSON about the link for a client that asks for JSON, and for any other
  client the content itself: the file, or the folder as a zip archive.
- `GET|HEAD /s/{token}/download`: the content, for every client.
- `GET /s/{token}/folders/{path}` and `GET /s/{token}/files/{path}`: a folder
  and a file below a linked folder.
- `POST /s/{token}/unlock`: the password form of a protected link.

A token unknown in this tenant, another tenant's included, gets 404; an
expired, used up or revoked link gets 410.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from functools import partial
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.responses import Response

from strongroom.base.errors import Conflict, Gone, NotFound
from strongroom.base.logging import get_logger
from strongroom.drive import archives, files, links
from strongroom.drive.content import read_range
from strongroom.drive.models import FILE, FOLDER, LinkRow, NodeRow
from strongroom.drive.paths import join_path, split_path
from strongroom.interfaces.api.dependencies import RuntimeDep, TenantDep, actor_of, require_module
from strongroom.interfaces.api.files import open_stream
from strongroom.interfaces.public import grants
from strongroom.interfaces.public.content import (
    Download,
    attachment,
    charge,
    is_resuming,
    refund,
    send_file,
)
from strongroom.interfaces.public.forms import read_small_form
from strongroom.interfaces.public.pages import (
    PublicRoute,
    human_size,
    local_time,
    render,
    secure,
    wants,
)
from strongroom.interfaces.public.passwords import check_password, unlock
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.modules import PUBLIC_LINKS
from strongroom.tenancy.time_zones import tenant_time_zone

log = get_logger(__name__)

router = APIRouter(
    route_class=PublicRoute,
    include_in_schema=False,
    tags=["public links"],
    dependencies=[require_module(PUBLIC_LINKS)],
)

AREA = "s"
GONE_MESSAGES = {
    links.EXPIRED: "this link has expired; ask the person who shared it for a new one",
    links.EXHAUSTED: "this link has reached its download limit; ask the person who shared it "
    "for a new one",
    links.REVOKED: "this link was turned off by the person who shared it; ask them for a new one",
}


@dataclass(frozen=True)
class Opened:
    """A usable link, its file or folder, and the tenant's time zone."""

    link: LinkRow
    node: NodeRow
    zone: zoneinfo.ZoneInfo


def open_link(runtime: Runtime, tenant: TenantInfo, token: str, resuming: bool = False) -> Opened:
    """Return the link of this token in the tenant, or raise NotFound or Gone.

    `resuming` is for a range that does not start at byte 0, which a used up
    link still serves within its tolerance (see `drive.links`).
    """
    with runtime.stores.session(tenant) as session:
        link = links.find_link(session, token)
        if link is None:
            raise NotFound("no link exists at this address; check that the whole address was copied")
        state = links.state_of(link, resuming=resuming)
        if state == links.ACTIVE and not links.owner_is_active(session, link.owner_id):
            state = links.REVOKED
        if state != links.ACTIVE:
            raise Gone(GONE_MESSAGES[state])
        node = links.get_target(session, link)
        if node is None:
            raise NotFound("the file or folder of this link was deleted or moved to the trash")
    return Opened(link, node, tenant_time_zone(tenant))


async def open_unlocked(
    request: Request, runtime: Runtime, tenant: TenantInfo, token: str
) -> Opened | Response:
    """Open the link and check its password; return the password form where a browser needs one."""
    opened = await anyio.to_thread.run_sync(
        open_link, runtime, tenant, token, is_resuming(request)
    )
    form = await check_password(
        request, runtime, tenant, opened.link.id, opened.link.password_hash, AREA, token
    )
    return form if form is not None else opened


# Routes ---------------------------------------------------------------------------------


@router.get("/s/{token}")
async def show_link(token: str, request: Request, runtime: RuntimeDep, tenant: TenantDep) -> Response:
    opened = await open_unlocked(request, runtime, tenant, token)
    if isinstance(opened, Response):
        return opened
    audience = wants(request)
    if audience == "any":
        return await _download(request, runtime, tenant, opened, send_body=True)
    if opened.node.kind == FILE:
        return await anyio.to_thread.run_sync(_file_page, request, runtime, tenant, opened, audience, token)
    return await anyio.to_thread.run_sync(
        _folder_page, request, runtime, tenant, opened, opened.node, (), audience, token
    )


@router.api_route("/s/{token}/download", methods=["GET", "HEAD"])
async def download_link(
    token: str, request: Request, runtime: RuntimeDep, tenant: TenantDep
) -> Response:
    opened = await open_unlocked(request, runtime, tenant, token)
    if isinstance(opened, Response):
        return opened
    return await _download(request, runtime, tenant, opened, send_body=request.method != "HEAD")


@router.get("/s/{token}/folders/{path:path}")
async def show_folder(
    token: str, path: str, request: Request, runtime: RuntimeDep, tenant: TenantDep
) -> Response:
    opened = await open_unlocked(request, runtime, tenant, token)
    if isinstance(opened, Response):
        return opened
    names = split_path(path)
    folder = await anyio.to_thread.run_sync(_below, runtime, tenant, opened, names, FOLDER)
    return await anyio.to_thread.run_sync(
        _folder_page, request, runtime, tenant, opened, folder, names, wants(request), token
    )


@router.get("/s/{token}/files/{path:path}")
async def download_below(
    token: str, path: str, request: Request, runtime: RuntimeDep, tenant: TenantDep
) -> Response:
    opened = await open_unlocked(request, runtime, tenant, token)
    if isinstance(opened, Response):
        return opened
    node = await anyio.to_thread.run_sync(_below, runtime, tenant, opened, split_path(path), FILE)
    return await send_file(request, runtime, tenant, opened.link.id, node, send_body=True)


@router.post("/s/{token}/unlock")
async def unlock_link(
    token: str, request: Request, runtime: RuntimeDep, tenant: TenantDep
) -> Response:
    opened = await anyio.to_thread.run_sync(open_link, runtime, tenant, token)
    form = await read_small_form(request)
    return await unlock(
        request, runtime, tenant, opened.link.id, opened.link.password_hash, AREA, token, form
    )


# Steps ----------------------------------------------------------------------------------


def _below(
    runtime: Runtime, tenant: TenantInfo, opened: Opened, names: tuple[str, ...], kind: str
) -> NodeRow:
    """Return the file or folder at a path below the linked folder, or raise NotFound."""
    if opened.node.kind != FOLDER:
        raise NotFound("this link is to a single file, which has nothing below it")
    with runtime.stores.session(tenant) as session:
        node = links.resolve_below(session, opened.node, names)
    if node is None or (kind == FILE and not names):
        raise NotFound(f"this folder has nothing at {join_path(names)!r}")
    if node.kind != kind:
        raise Conflict(f"{join_path(names)!r} is a {node.kind}, not a {kind}")
    return node


async def _download(
    request: Request, runtime: Runtime, tenant: TenantInfo, opened: Opened, send_body: bool
) -> Response:
    if opened.node.kind == FILE:
        return await send_file(request, runtime, tenant, opened.link.id, opened.node, send_body)
    return await _send_zip(request, runtime, tenant, opened, send_body)


async def _send_zip(
    request: Request, runtime: Runtime, tenant: TenantInfo, opened: Opened, send_body: bool
) -> Response:
    """Send the linked folder as a zip archive, which counts one whole download."""
    headers = {"Content-Disposition": attachment(f"{opened.node.name}.zip")}
    if not send_body:
        return secure(Response(headers=headers, media_type="application/zip"), content=True)
    entries = await anyio.to_thread.run_sync(_archive_entries, runtime, tenant, opened)
    download = Download(opened.node.id, actor_of(request, None))
    await charge(runtime, tenant, opened.link.id, links.UNIT, download)
    try:
        stream = await open_stream(runtime, tenant, archives.stream_zip(entries))
    except BaseException:
        await refund(runtime, tenant, opened.link.id, links.UNIT)
        raise
    log.info("link_zip_download", link_id=str(opened.link.id), entries=len(entries))
    return secure(
        StreamingResponse(stream, headers=headers, media_type="application/zip"),
        content=True,
    )


def _archive_entries(runtime: Runtime, tenant: TenantInfo, opened: Opened) -> list[archives.ArchiveEntry]:
    top = opened.node.name
    entries = [archives.ArchiveEntry(f"{top}/", _local(opened.node.modified_at, opened.zone))]
    with runtime.stores.session(tenant) as session:
        for item in links.walk_tree(session, opened.node):
            modified = _local(item.node.modified_at, opened.zone)
            if item.node.kind == FOLDER:
                entries.append(archives.ArchiveEntry(f"{top}/{item.path}/", modified))
                continue
            if item.node.current_version_id is None:
                continue
            _version, blob = files.current_content(session, item.node)
            key = runtime.keyring.version(tenant.id, blob.key_version)
            content = partial(read_range, runtime.blobs, blob, key, 0, max(blob.size - 1, 0))
            entries.append(archives.ArchiveEntry(f"{top}/{item.path}", modified, blob.size, content))
    return entries


def _local(moment: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    return links.aware(moment).astimezone(zone)


# Pages ----------------------------------------------------------------------------------


def _common(opened: Opened) -> dict[str, object]:
    link = opened.link
    left = None
    if link.max_downloads is not None:
        left = max(link.max_downloads * links.UNIT - link.download_units, 0) / links.UNIT
    return {
        "expires": local_time(link.expires_at, opened.zone) if link.expires_at else None,
        "downloads_left": None if left is None else f"{left:g}",
    }


def _file_page(
    request: Request, runtime: Runtime, tenant: TenantInfo, opened: Opened, audience: str, token: str
) -> Response:
    node = opened.node
    base = grants.scope_path(request, AREA, token)
    if audience == "json":
        return secure(JSONResponse(_link_json(opened, base)))
    return render(
        request,
        "file.html",
        heading=node.name,
        name=node.name,
        size=human_size(node.size),
        modified=local_time(node.modified_at, opened.zone),
        download_url=f"{base}/download",
        **_common(opened),
    )


def _folder_page(
    request: Request,
    runtime: Runtime,
    tenant: TenantInfo,
    opened: Opened,
    folder: NodeRow,
    names: tuple[str, ...],
    audience: str,
    token: str,
) -> Response:
    base = grants.scope_path(request, AREA, token)
    with runtime.stores.session(tenant) as session:
        children = files.list_children(session, folder)
    items = []
    for child in children:
        path = quote(join_path((*names, child.name)))
        area = "folders" if child.kind == FOLDER else "files"
        items.append(
            {
                "name": child.name,
                "kind": child.kind,
                "size": human_size(child.size) if child.kind == FILE else "",
                "bytes": child.size if child.kind == FILE else None,
                "modified": local_time(child.modified_at, opened.zone),
                "url": f"{base}/{area}/{path}",
            }
        )
    if audience == "json":
        document = _link_json(opened, base)
        document["path"] = join_path(names)
        document["items"] = [
            {"name": i["name"], "type": i["kind"], "size": i["bytes"], "url": i["url"]} for i in items
        ]
        return secure(JSONResponse(document))
    parent_url = None
    if names:
        parent_url = f"{base}/folders/{quote(join_path(names[:-1]))}" if len(names) > 1 else base
    heading = opened.node.name if not names else f"{opened.node.name}/{join_path(names)}"
    return render(
        request,
        "folder.html",
        heading=heading,
        items=items,
        zip_url=f"{base}/download",
        parent_url=parent_url,
        **_common(opened),
    )


def _link_json(opened: Opened, base: str) -> dict[str, object]:
    link, node = opened.link, opened.node
    return {
        "type": node.kind,
        "name": node.name,
        "size": node.size if node.kind == FILE else None,
        "modified": links.aware(node.modified_at).isoformat(),
        "expires_at": links.aware(link.expires_at).isoformat() if link.expires_at else None,
        "max_downloads": link.max_downloads,
        "downloads_used": links.downloads_used(link),
        "download_url": f"{base}/download",
    }

