"""The pages and uploads of upload requests, under `{base}/r/{token}`.

- `GET /r/{token}`: the upload form for browsers, JSON about the request's
  limits for other clients. Nothing of the folder is shown: not its name,
  not its files.
- `POST /r/{token}`: the form's multipart body, one or more files, streamed
  into encrypted blobs. The form's CSRF field must come before its files.
- `PUT /r/{token}/files/{name}`: one file as the raw body, for scripts
  (`curl -u :PASSWORD -T report.pdf {base}/r/{token}/files/report.pdf`).
- `POST /r/{token}/unlock`: the password form of a protected request.

A JSON reply gives each file's size and SHA-256, in the order sent, and no
name. The stored name would show whether the folder already contains a file of
that name, and the name as sent is false whenever a number was added. The
browser's thank-you page lists the files the visitor chose, by their own names.
"""

from __future__ import annotations

import uuid
import zoneinfo
from dataclasses import dataclass, field

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from strongroom.base.errors import Gone, InvalidInput, InvalidPath, MethodNotAllowed, NotFound
from strongroom.base.logging import get_logger
from strongroom.drive import upload_requests
from strongroom.drive.content import BlobUpload
from strongroom.drive.links import owner_is_active
from strongroom.drive.models import UploadRequestRow
from strongroom.drive.paths import check_name
from strongroom.drive.upload_requests import Received
from strongroom.interfaces.api.dependencies import RuntimeDep, TenantDep, actor_of, require_module
from strongroom.interfaces.api.files import abort_upload, receive_in_slot
from strongroom.interfaces.public import grants
from strongroom.interfaces.public.forms import MultipartReader, read_small_form
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
from strongroom.tenancy.modules import UPLOAD_REQUESTS
from strongroom.tenancy.time_zones import tenant_time_zone

log = get_logger(__name__)

router = APIRouter(
    route_class=PublicRoute,
    include_in_schema=False,
    tags=["upload requests"],
    dependencies=[require_module(UPLOAD_REQUESTS)],
)

AREA = "r"
GONE_MESSAGES = {
    upload_requests.EXPIRED: "this upload request has expired; ask the person who sent it "
    "for a new one",
    upload_requests.FULL: "this upload request has received all the bytes it accepts; ask the "
    "person who sent it for a new one",
    upload_requests.REVOKED: "this upload request was turned off by the person who made it; "
    "ask them for a new one",
}


@dataclass(frozen=True)
class OpenedRequest:
    row: UploadRequestRow
    zone: zoneinfo.ZoneInfo


def open_request(runtime: Runtime, tenant: TenantInfo, token: str) -> OpenedRequest:
    """Return the usable upload request of this token in the tenant, or raise NotFound or Gone."""
    with runtime.stores.session(tenant) as session:
        row = upload_requests.find_upload_request(session, token)
        if row is None:
            raise NotFound(
                "no upload request exists at this address; check that the whole address was copied"
            )
        state = upload_requests.state_of(row)
        if state == upload_requests.ACTIVE and not owner_is_active(session, row.owner_id):
            state = upload_requests.REVOKED
        if state != upload_requests.ACTIVE:
            raise Gone(GONE_MESSAGES[state])
        if upload_requests.get_folder(session, row) is None:
            raise NotFound("the folder of this upload request was deleted or moved to the trash")
    return OpenedRequest(row, tenant_time_zone(tenant))


async def open_unlocked(
    request: Request, runtime: Runtime, tenant: TenantInfo, token: str
) -> OpenedRequest | Response:
    opened = await anyio.to_thread.run_sync(open_request, runtime, tenant, token)
    form = await check_password(
        request, runtime, tenant, opened.row.id, opened.row.password_hash, AREA, token
    )
    return form if form is not None else opened


# Routes ---------------------------------------------------------------------------------


@router.get("/r/{token}")
async def show_upload_request(
    token: str, request: Request, runtime: RuntimeDep, tenant: TenantDep
) -> Response:
    opened = await open_unlocked(request, runtime, tenant, token)
    if isinstance(opened, Response):
        return opened
    row, base = opened.row, grants.scope_path(request, AREA, token)
    if wants(request) != "html":
        return secure(
            JSONResponse(
                {
                    "title": row.title,
                    "expires_at": row.expires_at.isoformat() if row.expires_at else None,
                    "max_file_size": row.max_file_size,
                    "bytes_left": upload_requests.bytes_left(row),
                    "upload_url": f"{base}/files/{{name}}",
                }
            )
        )
    csrf = grants.csrf_token(request)
    response = render(
        request,
        "upload.html",
        heading=row.title,
        action=base,
        csrf=csrf,
        limits=_limits_text(row),
        expires=local_time(row.expires_at, opened.zone) if row.expires_at else None,
    )
    grants.set_csrf_cookie(request, response, csrf, base)
    return response


@router.post("/r/{token}")
async def receive_form(
    token: str, request: Request, runtime: RuntimeDep, tenant: TenantDep
) -> Response:
    opened = await open_unlocked(request, runtime, tenant, token)
    if isinstance(opened, Response):
        return opened
    incoming = _Incoming(request, runtime, tenant, opened.row.id)
    reader = MultipartReader(request.headers.get("content-type", ""), incoming.field, incoming.open)
    try:
        await reader.read(request)
    finally:
        await anyio.to_thread.run_sync(
            upload_requests.notify_owner, runtime, tenant, opened.row.id, incoming.received
        )
    if not incoming.received:
        raise InvalidInput("the form contains no file; choose one or more files and send it again")
    return _received_response(request, token, incoming.received)


@router.put("/r/{token}/files/{name:path}")
async def receive_file(
    token: str, name: str, request: Request, runtime: RuntimeDep, tenant: TenantDep
) -> Response:
    opened = await open_unlocked(request, runtime, tenant, token)
    if isinstance(opened, Response):
        return opened
    filename = _file_name(name)
    declared = request.headers.get("content-length")
    upload = await anyio.to_thread.run_sync(
        upload_requests.begin_receiving,
        runtime,
        tenant,
        opened.row.id,
        filename,
        int(declared) if declared and declared.isascii() and declared.isdigit() else None,
    )
    try:
        await receive_in_slot(request, runtime, tenant, upload)
    except BaseException:
        await abort_upload(upload)
        raise
    received = await anyio.to_thread.run_sync(
        upload_requests.finish_receiving,
        runtime,
        tenant,
        opened.row.id,
        filename,
        upload,
        actor_of(request, None),
    )
    await anyio.to_thread.run_sync(
        upload_requests.notify_owner, runtime, tenant, opened.row.id, [received]
    )
    return _received_response(request, token, [received])


@router.post("/r/{token}/unlock")
async def unlock_upload_request(
    token: str, request: Request, runtime: RuntimeDep, tenant: TenantDep
) -> Response:
    opened = await anyio.to_thread.run_sync(open_request, runtime, tenant, token)
    form = await read_small_form(request)
    return await unlock(
        request, runtime, tenant, opened.row.id, opened.row.password_hash, AREA, token, form
    )


# Declared last, so that it matches only addresses that no route above serves.
@router.api_route(
    "/r/{token}/{rest:path}",
    methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
)
async def elsewhere_in_upload_request(
    token: str, rest: str, request: Request, runtime: RuntimeDep, tenant: TenantDep
) -> Response:
    """Explain to a visitor that an address under an upload request is not one of its pages.

    Without this route, such an address would get the API's problem for an unknown
    route, which points to the OpenAPI document and does not help a visitor.
    """
    await anyio.to_thread.run_sync(open_request, runtime, tenant, token)
    if rest.startswith("files/") and request.method != "PUT":
        raise MethodNotAllowed(
            "files sent to an upload request cannot be read or changed here; send a file with "
            "PUT to this address, or use the form at the address you were given",
            allow="PUT",
        )
    raise NotFound(
        "this address is not part of the upload request; open the address you were given, "
        "without anything added after it"
    )


# Steps ----------------------------------------------------------------------------------


def _file_name(name: str) -> str:
    """Return the name of a file sent with PUT, which must be a name alone, not a path."""
    if not name:
        raise InvalidPath(
            "the address has no file name after /files/; add the file's name, as in "
            "/files/report.pdf"
        )
    if "/" in name:
        raise InvalidPath(
            f"the file name {name!r} contains '/'; an upload request takes files into one "
            f"folder, so send the file under its name alone, such as {name.rsplit('/', 1)[-1]!r}"
        )
    return check_name(name)


@dataclass
class _Incoming:
    """The files of one form, received in the reader's worker thread."""

    request: Request
    runtime: Runtime
    tenant: TenantInfo
    request_id: uuid.UUID
    csrf_checked: bool = False
    received: list[Received] = field(default_factory=list)

    def field(self, name: str, value: str) -> None:
        if name == "csrf":
            grants.check_csrf(self.request, value)
            self.csrf_checked = True

    def open(self, _field: str, filename: str) -> _IncomingFile | None:
        if not self.csrf_checked:
            # A CSRF field after the files is rejected too, because the files would be
            # stored before it arrived.
            grants.check_csrf(self.request, None)
        if not filename:
            return None  # a file input left empty
        name = check_name(filename)
        upload = upload_requests.begin_receiving(
            self.runtime, self.tenant, self.request_id, name, None
        )
        return _IncomingFile(self, name, upload)


@dataclass
class _IncomingFile:
    incoming: _Incoming
    name: str
    upload: BlobUpload

    def feed(self, data: bytes) -> None:
        self.upload.feed(data)

    def finish(self) -> None:
        incoming = self.incoming
        self.incoming.received.append(
            upload_requests.finish_receiving(
                incoming.runtime,
                incoming.tenant,
                incoming.request_id,
                self.name,
                self.upload,
                actor_of(incoming.request, None),
            )
        )

    def abort(self) -> None:
        self.upload.abort()


def _received_response(request: Request, token: str, received: list[Received]) -> Response:
    if wants(request) != "html":
        # No name, because the stored one reveals taken names and the sent one can be false.
        items = [{"size": item.size, "sha256": item.sha256} for item in received]
        return secure(JSONResponse({"received": items}, status_code=201))
    return render(
        request,
        "received.html",
        status=201,
        heading="Files received",
        received=[{"name": item.sent_name, "size": human_size(item.size)} for item in received],
        back_url=grants.scope_path(request, AREA, token),
    )


def _limits_text(row: UploadRequestRow) -> str | None:
    parts = []
    if row.max_file_size is not None:
        parts.append(f"Each file may have up to {human_size(row.max_file_size)}.")
    if row.max_total_size is not None:
        left = max(row.max_total_size - row.bytes_received, 0)
        parts.append(f"There is room for {human_size(left)} more in all.")
    return " ".join(parts) or None
