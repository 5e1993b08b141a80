"""Exports for the tenant's admins: request one, follow its job, download it, delete it.

`POST {base}/api/v1/admin/exports` returns 202 with the queued export and
its URL in `Location`, and a background job builds it. Its content downloads
from `.../content` once its status is `ready`, and until it expires.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from strongroom.drive.content import read_range
from strongroom.drive.models import BlobRow
from strongroom.exports import building, requests
from strongroom.exports.kinds import KINDS
from strongroom.exports.models import ExportRow
from strongroom.interfaces.api.bodies import RequestBody
from strongroom.interfaces.api.dependencies import (
    API_PREFIX,
    AdminDep,
    RuntimeDep,
    TenantDep,
    actor_of,
    parse_object_id,
)
from strongroom.interfaces.api.files import open_stream
from strongroom.interfaces.api.schemas import utc
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.events import Actor, Target, record_event
from strongroom.tenancy.keys import TenantKey
from strongroom.tenancy.models import utcnow

router = APIRouter(prefix=API_PREFIX, tags=["exports"])

KINDS_HELP = "; ".join(
    f"{kind.name}: {kind.description} ({', '.join(f.name for f in kind.formats)})"
    for kind in KINDS.values()
)


class ExportCreate(RequestBody):
    kind: str = Field(description=f"what to export: {KINDS_HELP}")
    filters: dict[str, Any] = Field(
        default_factory=dict,
        description="the kind's filters as strings: audit takes action, actor, since and until "
        "as GET /audit does; usage takes month, as YYYY-MM in UTC",
    )
    format: str | None = Field(
        default=None, description="one of the kind's formats; the first by default"
    )


class ExportOut(BaseModel):
    id: uuid.UUID
    kind: str
    format: str
    filters: dict[str, Any]
    requested_by: uuid.UUID
    status: str = Field(
        description="queued, running, ready or failed, or expired once `expires` has passed"
    )
    reason: str | None = Field(description="why the last attempt failed, if one did")
    size: int | None = Field(description="bytes of content, once ready")
    sha256: str | None = Field(description="SHA-256 of the content, once ready")
    created: dt.datetime
    finished: dt.datetime | None
    expires: dt.datetime | None = Field(description="when the export and its content are deleted")


class ExportListing(BaseModel):
    items: list[ExportOut]


@router.post(
    "/admin/exports",
    response_model=ExportOut,
    status_code=202,
    summary="Request an export, built by a background job (admins)",
)
def request_export(
    body: ExportCreate,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    principal: AdminDep,
    response: Response,
) -> ExportOut:
    actor = actor_of(request, principal.user_id)
    with runtime.stores.session(tenant, write=True) as session:
        export = requests.request_export(
            session,
            tenant,
            actor,
            principal.user_id,
            body.kind,
            body.filters,
            body.format,
            runtime.settings.export_max_held_bytes,
        )
        out = _export_out(export, utcnow())
    building.enqueue_build(runtime, tenant, export.id)
    response.headers["Location"] = f"{request.scope.get('root_path', '')}{_path_of(export.id)}"
    return out


@router.get("/admin/exports", response_model=ExportListing, summary="List the exports (admins)")
def list_exports(runtime: RuntimeDep, tenant: TenantDep, _principal: AdminDep) -> ExportListing:
    with runtime.stores.session(tenant) as session:
        exports = requests.list_exports(session)
    now = utcnow()
    return ExportListing(items=[_export_out(export, now) for export in exports])


@router.get("/admin/exports/{export_id}", response_model=ExportOut, summary="One export (admins)")
def get_export(
    export_id: str, runtime: RuntimeDep, tenant: TenantDep, _principal: AdminDep
) -> ExportOut:
    with runtime.stores.session(tenant) as session:
        export = requests.access_export(session, parse_object_id(export_id, "export"))
    return _export_out(export, utcnow())


@router.get(
    "/admin/exports/{export_id}/content",
    summary="Download a ready export (admins); 409 while it is not ready or once it expired",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "the content"}},
)
async def download_export(
    export_id: str, request: Request, runtime: RuntimeDep, tenant: TenantDep, principal: AdminDep
) -> Response:
    target = parse_object_id(export_id, "export")
    actor = actor_of(request, principal.user_id)
    return await send_export(runtime, tenant, target, actor, send_body=True)


@router.head(
    "/admin/exports/{export_id}/content",
    summary="The headers of an export's download, without the content (admins)",
)
async def head_export(
    export_id: str, request: Request, runtime: RuntimeDep, tenant: TenantDep, principal: AdminDep
) -> Response:
    target = parse_object_id(export_id, "export")
    actor = actor_of(request, principal.user_id)
    return await send_export(runtime, tenant, target, actor, send_body=False)


@dataclass(frozen=True)
class ReadyExport:
    export: ExportRow
    blob: BlobRow
    tenant_key: TenantKey


def open_export(runtime: Runtime, tenant: TenantInfo, export_id: uuid.UUID) -> ReadyExport:
    """Return a ready export with its blob and key, or raise as `access_ready_content` does."""
    with runtime.stores.session(tenant) as session:
        export, blob = requests.access_ready_content(session, export_id)
    return ReadyExport(export, blob, runtime.keyring.version(tenant.id, blob.key_version))


async def send_export(
    runtime: Runtime, tenant: TenantInfo, export_id: uuid.UUID, actor: Actor, send_body: bool
) -> Response:
    """Send a ready export's content, or its headers only, metered as a file download is.

    The body goes through the tenant's transfer slots and bandwidth, and its
    bytes count as the tenant's outgoing bytes. Only a response with a body
    records the audit event `export_downloaded`.
    """
    ready = await anyio.to_thread.run_sync(open_export, runtime, tenant, export_id)
    export = ready.export
    kind_format = KINDS[export.kind].format_named(export.format)
    stamp = utc(export.created_at).strftime("%Y%m%dT%H%M%SZ")
    name = f"{export.kind}-{tenant.slug}-{stamp}.{kind_format.extension}"
    headers = {
        "Content-Disposition": f'attachment; filename="{name}"',
        "Content-Length": str(ready.blob.size),
        "ETag": f'"{export.sha256}"',
    }
    if not send_body:
        return Response(headers=headers, media_type=kind_format.media_type)

    pieces = read_range(runtime.blobs, ready.blob, ready.tenant_key, 0, ready.blob.size - 1)
    # The first chunk is decrypted before this returns, so that a damaged blob gets an
    # error response instead of a body cut short, and no download event.
    body = await open_stream(runtime, tenant, pieces)
    # NOTE: if the event cannot be written, the body never starts, and its transfer slot is
    # freed when its lease expires (LEASE_SECONDS in tenancy/fair_share.py), not at once.
    await anyio.to_thread.run_sync(_record_download, runtime, tenant, export, actor)
    return StreamingResponse(body, media_type=kind_format.media_type, headers=headers)


def _record_download(runtime: Runtime, tenant: TenantInfo, export: ExportRow, actor: Actor) -> None:
    record_event(
        runtime.stores,
        tenant,
        "export_downloaded",
        actor,
        target=Target("export", export.id),
        new={"kind": export.kind, "size": export.size},
    )


@router.delete(
    "/admin/exports/{export_id}",
    status_code=204,
    summary="Delete an export and its content (admins)",
)
def delete_export(
    export_id: str, request: Request, runtime: RuntimeDep, tenant: TenantDep, principal: AdminDep
) -> Response:
    target = parse_object_id(export_id, "export")
    actor = actor_of(request, principal.user_id)
    with runtime.stores.session(tenant, write=True) as session:
        requests.delete_export(session, tenant, actor, target)
    requests.delete_content(runtime, tenant, target)
    return Response(status_code=204)


def _path_of(export_id: uuid.UUID) -> str:
    return f"{API_PREFIX}/admin/exports/{export_id}"


def _export_out(export: ExportRow, now: dt.datetime) -> ExportOut:
    return ExportOut(
        id=export.id,
        kind=export.kind,
        format=export.format,
        filters=dict(export.filters),
        requested_by=export.requested_by,
        status=export.status_at(now),
        reason=export.reason,
        size=export.size,
        sha256=export.sha256,
        created=utc(export.created_at),
        finished=utc(export.finished_at) if export.finished_at else None,
        expires=utc(export.expires_at) if export.expires_at else None,
    )
