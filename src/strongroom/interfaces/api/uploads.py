"""Resumable uploads over the tus protocol 1.0.0 (https://tus.io/protocols/resumable-upload).

The core protocol and the creation, termination, checksum and expiration
extensions. `POST /api/v1/uploads/` creates an upload for the file path in
the `filename` of Upload-Metadata, PATCH requests append to it, and the
request that reaches Upload-Length makes the file version, exactly as a PUT
of the same bytes to /api/v1/files/{path} would. drive/resumable.py keeps the
state; this module speaks the protocol.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import ParamSpec, TypeVar

import anyio
from fastapi import APIRouter, Request, Response
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strongroom.base.config import Settings
from strongroom.base.errors import (
    InvalidInput,
    PayloadTooLarge,
    PreconditionFailed,
    QuotaExceeded,
    RequestTimeout,
    UnsupportedMediaType,
)
from strongroom.base.logging import get_logger
from strongroom.drive import resumable
from strongroom.drive.models import UploadRow
from strongroom.drive.resumable import CHECKSUM_ALGORITHMS, Checksum, UploadAppend
from strongroom.interfaces import webhook_events
from strongroom.interfaces.api.dependencies import (
    API_PREFIX,
    PrincipalDep,
    RuntimeDep,
    TenantDep,
    parse_object_id,
)
from strongroom.interfaces.api.feed_behind import FeedBehind
from strongroom.tenancy.modules import WEBHOOKS

log = get_logger(__name__)

router = APIRouter(prefix=API_PREFIX, tags=["uploads"])

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,checksum,expiration"
OFFSET_MEDIA_TYPE = "application/offset+octet-stream"
# Enough for a long path in base64 and a few more keys. The row stores the header
# as sent, because HEAD must return it unchanged.
MAX_METADATA_CHARACTERS = 4096
METADATA_KEY = re.compile(r"[!-~]+")  # visible ASCII: no space, no control character
UPLOADS_PATH = re.compile(rf"{API_PREFIX}/uploads/[^/]*")


# Protocol headers --------------------------------------------------------------------

P = ParamSpec("P")
T = TypeVar("T")


def quota_as_too_large(
    endpoint: Callable[P, Awaitable[Response]],
) -> Callable[P, Awaitable[Response]]:
    """Turn the quota refusals of an endpoint into 413.

    413 is the one status the tus protocol gives for an upload too large,
    where a PUT responds with 507.
    """

    # FastAPI reads the parameters through __wrapped__, which functools.wraps sets.
    @functools.wraps(endpoint)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
        try:
            return await endpoint(*args, **kwargs)
        except QuotaExceeded as error:
            raise PayloadTooLarge(error.detail, **error.extra) from error

    return wrapper


def check_tus_version(request: Request) -> None:
    version = request.headers.get("tus-resumable")
    if version != TUS_VERSION:
        error = PreconditionFailed(
            f"Tus-Resumable {version!r} is not a protocol version this server speaks; "
            f"send Tus-Resumable: {TUS_VERSION}"
        )
        error.headers["Tus-Version"] = TUS_VERSION
        raise error


def parse_byte_count(request: Request, name: str) -> int | None:
    """Return the value of a header that counts bytes, None when it is missing."""
    value = request.headers.get(name)
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        raise InvalidInput(f"{name} {value!r} is not a number of bytes; send a whole number")
    return int(value)


def parse_metadata(header: str) -> dict[str, bytes]:
    """Decode Upload-Metadata: comma-separated pairs of a key and a base64 value."""
    if len(header) > MAX_METADATA_CHARACTERS:
        raise InvalidInput(
            f"Upload-Metadata has {len(header)} characters, more than the "
            f"{MAX_METADATA_CHARACTERS} allowed; send only the filename"
        )
    pairs: dict[str, bytes] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition(" ")
        if not METADATA_KEY.fullmatch(key):
            raise InvalidInput(
                f"Upload-Metadata has the key {key!r}; keys are ASCII without spaces or commas"
            )
        if key in pairs:
            raise InvalidInput(f"Upload-Metadata names the key {key!r} twice; send it once")
        try:
            pairs[key] = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(
                f"the Upload-Metadata value of {key!r} is not valid base64; encode it with base64"
            ) from None
    return pairs


def target_path(metadata_header: str | None) -> str:
    if not metadata_header:
        raise InvalidInput(
            "an upload needs the target path as `filename` in Upload-Metadata, base64 encoded, "
            "such as `Upload-Metadata: filename ZG9jcy9hLnR4dA==` for docs/a.txt"
        )
    filename = parse_metadata(metadata_header).get("filename")
    if filename is None:
        raise InvalidInput(
            "Upload-Metadata has no `filename`; send the target path, base64 encoded, under "
            "that key"
        )
    try:
        return filename.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the `filename` of Upload-Metadata is not UTF-8 text") from None


def parse_checksum(header: str | None) -> Checksum | None:
    if header is None:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise InvalidInput(
            f"Upload-Checksum uses {algorithm!r}, which this server does not support; use one "
            f"of {', '.join(CHECKSUM_ALGORITHMS)}"
        )
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("the digest of Upload-Checksum is not valid base64") from None
    # An empty or cut digest can never match, so it is a malformed header, not a mismatch.
    expected = CHECKSUM_ALGORITHMS[algorithm]().digest_size
    if len(digest) != expected:
        raise InvalidInput(
            f"the digest of Upload-Checksum has {len(digest)} bytes where {algorithm} has "
            f"{expected}; send `Upload-Checksum: {algorithm} DIGEST` with the digest in base64"
        )
    return Checksum(algorithm, digest)


def state_headers(upload: UploadRow) -> dict[str, str]:
    """Return the headers that describe an upload's state."""
    headers = {
        "Upload-Offset": str(upload.upload_offset),
        "Upload-Length": str(upload.upload_length),
    }
    if upload.completed_at is None:
        headers["Upload-Expires"] = resumable.http_expiry(upload)
    return headers


# Routes ------------------------------------------------------------------------------


@router.options("/uploads/", summary="Describe the tus protocol support of the server")
async def describe_uploads(runtime: RuntimeDep, _tenant: TenantDep) -> Response:
    headers = {
        "Tus-Version": TUS_VERSION,
        "Tus-Extension": TUS_EXTENSIONS,
        "Tus-Max-Size": str(runtime.settings.tus_max_size),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
    }
    return Response(status_code=204, headers=headers)


@router.post(
    "/uploads/",
    status_code=201,
    summary="Create a resumable upload (tus) for the path in the `filename` of Upload-Metadata",
)
@quota_as_too_large
async def create_upload(
    request: Request, runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep
) -> Response:
    check_tus_version(request)
    if request.headers.get("upload-defer-length") is not None:
        raise InvalidInput("uploads of unknown length are not supported; send Upload-Length")
    length = parse_byte_count(request, "upload-length")
    if length is None:
        raise InvalidInput("a new upload needs Upload-Length, its size in bytes")
    if parse_byte_count(request, "content-length") or request.headers.get("transfer-encoding"):
        raise InvalidInput(
            "this server does not take bytes with the creation request; send them with PATCH"
        )
    metadata = request.headers.get("upload-metadata")
    path = target_path(metadata)

    upload = await anyio.to_thread.run_sync(
        resumable.create_upload, runtime, tenant, principal, path, length, metadata or ""
    )
    location = f"{request.scope.get('root_path', '')}{API_PREFIX}/uploads/{upload.id.hex}"
    headers = {"Location": location}
    if upload.completed_at is None:
        headers["Upload-Expires"] = resumable.http_expiry(upload)
    return Response(status_code=201, headers=headers)


@router.options("/uploads/{upload_id}", summary="Describe the tus protocol support of the server")
async def describe_upload(upload_id: str, runtime: RuntimeDep, tenant: TenantDep) -> Response:
    return await describe_uploads(runtime, tenant)


@router.head("/uploads/{upload_id}", summary="The offset and length of a resumable upload")
async def upload_state(
    upload_id: str, request: Request, runtime: RuntimeDep, tenant: TenantDep,
    principal: PrincipalDep,
) -> Response:
    check_tus_version(request)
    upload = await anyio.to_thread.run_sync(
        resumable.get_upload, runtime, tenant, principal, parse_object_id(upload_id, "upload")
    )
    headers = state_headers(upload)
    headers["Cache-Control"] = "no-store"
    if upload.upload_metadata:
        headers["Upload-Metadata"] = upload.upload_metadata
    return Response(status_code=200, headers=headers)


@router.patch("/uploads/{upload_id}", summary="Append bytes to a resumable upload at its offset")
@quota_as_too_large
async def append_to_upload(
    upload_id: str, request: Request, runtime: RuntimeDep, tenant: TenantDep,
    principal: PrincipalDep,
) -> Response:
    check_tus_version(request)
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != OFFSET_MEDIA_TYPE:
        raise UnsupportedMediaType(
            f"a PATCH to an upload needs Content-Type: {OFFSET_MEDIA_TYPE}, not {content_type!r}"
        )
    offset = parse_byte_count(request, "upload-offset")
    if offset is None:
        raise InvalidInput("a PATCH to an upload needs Upload-Offset, the offset it sends from")
    checksum = parse_checksum(request.headers.get("upload-checksum"))
    declared = parse_byte_count(request, "content-length")

    append = await anyio.to_thread.run_sync(
        resumable.begin_append,
        runtime, tenant, principal, parse_object_id(upload_id, "upload"), offset, checksum,
    )
    new_offset = await _receive(request, append, runtime.settings, declared)
    runtime.meter.record_upload(tenant, new_offset - offset)
    if append.completed is not None and WEBHOOKS in tenant.modules:
        node, version = append.completed
        await anyio.to_thread.run_sync(
            webhook_events.file_stored,
            runtime, tenant, node, version.number, version.size, principal.user_id, append.upload.path,
        )
    headers = state_headers(append.upload)
    del headers["Upload-Length"]
    return Response(status_code=204, headers=headers)


@router.delete("/uploads/{upload_id}", summary="Terminate a resumable upload and free its space")
async def terminate_upload(
    upload_id: str, request: Request, runtime: RuntimeDep, tenant: TenantDep,
    principal: PrincipalDep,
) -> Response:
    check_tus_version(request)
    await anyio.to_thread.run_sync(
        resumable.terminate_upload, runtime, tenant, principal,
        parse_object_id(upload_id, "upload"),
    )
    return Response(status_code=204)


# Receiving a PATCH body ---------------------------------------------------------------


async def _receive(
    request: Request, append: UploadAppend, settings: Settings, declared: int | None
) -> int:
    """Feed the request body into the upload and store it; return the new offset.

    Bytes that arrived before the client went away or fell silent are kept
    (unless a checksum came with them), and the error is raised after.
    """
    try:
        if declared is not None:
            # Checked before any byte is read, so the client learns it at once.
            _check_room(append, declared)
        await _feed_body(request, append, settings.chunk_size, settings.upload_idle_timeout)
    except (ClientDisconnect, RequestTimeout):
        offset = await _release(append.finish, False)
        log.info("upload_cut_off", upload_id=str(append.upload.id), offset=offset)
        raise
    except BaseException:
        await _release(append.discard)
        raise
    return await _release(append.finish, True)


async def _release(step: Callable[..., T], *args: object) -> T:
    """Run the step that releases the upload's lock in a worker thread, even when cancelled.

    A cancelled request would otherwise leave the chunks file locked until
    the process ends.
    """
    with anyio.CancelScope(shield=True):
        return await anyio.to_thread.run_sync(step, *args)


def _check_room(append: UploadAppend, declared: int) -> None:
    left = append.upload.upload_length - append.upload.upload_offset
    if declared > left:
        raise PayloadTooLarge(
            f"Content-Length {declared} is more than the {left} bytes left of upload "
            f"{append.upload.id}; send only the rest of the file",
            limit=left,
        )


async def _feed_body(
    request: Request, append: UploadAppend, chunk_size: int, idle_timeout: float
) -> None:
    """Gather body pieces up to one chunk in the event loop, then encrypt them in a worker thread."""
    pending: list[bytes] = []
    pending_size = 0
    pieces = request.stream().__aiter__()
    feed = FeedBehind(append.feed)
    try:
        while True:
            piece = await feed.receive(lambda: _next_piece(pieces, idle_timeout))
            if piece is None:
                break
            pending.append(piece)
            pending_size += len(piece)
            if pending_size >= chunk_size:
                await feed.send(b"".join(pending))
                pending, pending_size = [], 0
    except (ClientDisconnect, RequestTimeout):
        # What arrived before the client went away is stored too, as the protocol recommends.
        if pending:
            await feed.send(b"".join(pending))
        await feed.finish()
        raise
    except BaseException:
        await feed.settle()
        raise
    if pending:
        await feed.send(b"".join(pending))
    await feed.finish()


async def _next_piece(pieces: AsyncIterator[bytes], idle_timeout: float) -> bytes | None:
    try:
        with anyio.fail_after(idle_timeout):
            return await pieces.__anext__()
    except StopAsyncIteration:
        return None
    except TimeoutError:
        raise RequestTimeout(
            f"no part of the PATCH body arrived for {idle_timeout:g} seconds; the bytes before "
            "the pause were kept, so ask for the offset with HEAD and carry on from there"
        ) from None


# Every request to the upload routes -----------------------------------------------------


class TusProtocol:
    """Apply two rules of the tus protocol to every request on the upload routes.

    Every response carries Tus-Resumable, also the ones that the
    authentication or the router make. And X-HTTP-Method-Override of a POST
    is the request's method, for clients that can send only GET and POST.
    It runs after the tenant prefix is stripped from the path.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not UPLOADS_PATH.fullmatch(scope["path"]):
            await self.app(scope, receive, send)
            return
        override = _header(scope, b"x-http-method-override")
        if scope["method"] == "POST" and override is not None:
            scope = dict(scope, method=override.strip().upper())

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != b"tus-resumable"
                ]
                headers.append((b"tus-resumable", TUS_VERSION.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_version)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None
