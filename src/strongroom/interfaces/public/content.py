"""Sending a file's content to a visitor of a link: conditional and Range requests, and the count.

A response that sends content charges the link its share of the file before
the first byte goes out (see `strongroom.drive.links`). When the client goes
away early, the share of the bytes it did not receive is given back, so a
download cut off halfway and resumed with a Range request counts one in all.
HEAD and 304 responses send no content and count nothing. A resumed download
(a range that does not start at byte 0) may pass the limit by a twentieth of
a download, because the bytes a broken connection lost were charged too.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

import anyio
from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.responses import Response

from strongroom.base.errors import Gone, PreconditionFailed
from strongroom.base.logging import get_logger
from strongroom.drive import files, links
from strongroom.drive.content import read_range
from strongroom.drive.models import BlobRow, NodeRow, VersionRow
from strongroom.interfaces.api.dependencies import actor_of
from strongroom.interfaces.api.files import open_stream
from strongroom.interfaces.api.ranges import parse_etag_list, parse_range
from strongroom.interfaces.api.schemas import utc
from strongroom.interfaces.public.pages import secure
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.events import Actor, Target, add_event
from strongroom.tenancy.keys import TenantKey

log = get_logger(__name__)

EXHAUSTED_MESSAGE = (
    "this link has reached its download limit; ask the person who shared it for a new one"
)


@dataclass(frozen=True)
class Content:
    version: VersionRow
    blob: BlobRow
    tenant_key: TenantKey

    @property
    def etag(self) -> str:
        return f'"{self.version.id.hex}"'


def open_content(runtime: Runtime, tenant: TenantInfo, node: NodeRow) -> Content:
    with runtime.stores.session(tenant) as session:
        version, blob = files.current_content(session, node)
    return Content(version, blob, runtime.keyring.version(tenant.id, blob.key_version))


def is_resuming(request: Request) -> bool:
    """Return True for a Range request whose first byte is not byte 0: a download resumed."""
    header = (request.headers.get("range") or "").replace(" ", "")
    match = re.match(r"bytes=(\d{1,19})-", header)
    return match is not None and int(match.group(1)) > 0


def attachment(name: str) -> str:
    """Return a Content-Disposition that saves the content under its name (RFC 6266)."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


async def send_file(
    request: Request,
    runtime: Runtime,
    tenant: TenantInfo,
    link_id: uuid.UUID,
    node: NodeRow,
    send_body: bool,
) -> Response:
    """Send one file of a link, or its headers, charging the link for the bytes it sends."""
    content = await anyio.to_thread.run_sync(open_content, runtime, tenant, node)
    size = content.blob.size
    headers = {
        "ETag": content.etag,
        "Last-Modified": utc(content.version.created_at).strftime("%a, %d %b %Y %H:%M:%S GMT"),
        "Accept-Ranges": "bytes",
        "Content-Disposition": attachment(node.name),
    }
    if_match = parse_etag_list(request.headers.get("if-match"), strong=True)
    if if_match is not None and "*" not in if_match and content.etag not in if_match:
        raise PreconditionFailed(f"the file has ETag {content.etag}, which If-Match does not list")
    if_none_match = parse_etag_list(request.headers.get("if-none-match"))
    if if_none_match is not None and ("*" in if_none_match or content.etag in if_none_match):
        return secure(Response(status_code=304, headers=headers), content=True)

    byte_range = None
    if_range = request.headers.get("if-range")
    if if_range is None or if_range.strip() == content.etag:
        byte_range = parse_range(request.headers.get("range"), size)
    status, start, end = 200, 0, size - 1
    if byte_range is not None:
        status, (start, end) = 206, byte_range
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    length = end - start + 1 if size else 0
    headers["Content-Length"] = str(length)
    if not send_body:
        return secure(
            Response(status_code=status, headers=headers, media_type="application/octet-stream"),
            content=True,
        )

    units = links.share_of(length, size)
    sent_range = f"bytes {start}-{end}/{size}" if size else "bytes */0"
    download = Download(node.id, actor_of(request, None), sent_range)
    await charge(runtime, tenant, link_id, units, download, resuming=start > 0)
    pieces = read_range(runtime.blobs, content.blob, content.tenant_key, start, end)
    try:
        stream = await open_stream(runtime, tenant, pieces)
    except BaseException:
        await refund(runtime, tenant, link_id, units)
        raise

    async def settle(sent: int) -> None:
        # Charged for `length` bytes, rounded up; keep the share of what was sent.
        if sent < length:
            await refund(runtime, tenant, link_id, units - links.share_of(sent, size))

    body = counted(stream, settle)
    return secure(
        StreamingResponse(
            body, status_code=status, headers=headers, media_type="application/octet-stream"
        ),
        content=True,
    )


@dataclass(frozen=True)
class Download:
    """A visitor's download through a link, for the audit trail: the node and the bytes sent.

    `content_range` is the range of a file as Content-Range writes it, or
    None for a folder sent as a zip archive.
    """

    node_id: uuid.UUID
    actor: Actor
    content_range: str | None = None


async def charge(
    runtime: Runtime,
    tenant: TenantInfo,
    link_id: uuid.UUID,
    units: int,
    download: Download,
    resuming: bool = False,
) -> None:
    """Charge the link `units`, or raise Gone when its downloads are used up or it was revoked.

    The download's audit event commits with the charge.
    """
    charged = await anyio.to_thread.run_sync(
        _charge, runtime, tenant, link_id, units, download, resuming
    )
    if not charged:
        raise Gone(EXHAUSTED_MESSAGE)


def _charge(
    runtime: Runtime,
    tenant: TenantInfo,
    link_id: uuid.UUID,
    units: int,
    download: Download,
    resuming: bool,
) -> bool:
    with runtime.stores.session(tenant, write=True) as session:
        charged = links.charge_download(session, link_id, units, resuming)
        if charged:
            add_event(
                session,
                tenant,
                "link_downloaded",
                download.actor,
                target=Target("link", link_id),
                new={"node": str(download.node_id), "range": download.content_range},
            )
        return charged


async def refund(runtime: Runtime, tenant: TenantInfo, link_id: uuid.UUID, units: int) -> None:
    if units > 0:
        await anyio.to_thread.run_sync(_refund, runtime, tenant, link_id, units)


def _refund(runtime: Runtime, tenant: TenantInfo, link_id: uuid.UUID, units: int) -> None:
    try:
        with runtime.stores.session(tenant, write=True) as session:
            links.refund_download(session, link_id, units)
    except Exception as exc:  # noqa: BLE001 - the response is gone; log and keep the count
        log.warning("link_refund_failed", link_id=str(link_id), error=type(exc).__name__)


async def counted(
    pieces: AsyncGenerator[bytes, None], settle: Callable[[int], Awaitable[None]]
) -> AsyncIterator[bytes]:
    """Pass the pieces on, then call `settle` with the bytes the client took, however the stream ends."""
    # NOTE: bytes count as taken once `send` returns, which includes what the kernel queued
    # and the client never read, up to the socket's send buffer (4 MiB by Linux's default).
    sent = 0
    try:
        async for piece in pieces:
            yield piece
            sent += len(piece)
    finally:
        # Shielded: when the client went away, this runs in a cancelled task.
        with anyio.CancelScope(shield=True):
            await pieces.aclose()
            await settle(sent)
