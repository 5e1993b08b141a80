"""Upload requests: a secret URL through which outsiders put files into one folder.

The outsider is shown neither the folder's name nor its contents, and can never
read, list or replace a file there: each upload becomes a new file, and a
name already taken gets a number ("report (2).pdf"), never a new version of
the existing file. The request may carry a password (argon2id), an expiry, a
size limit per file and one for all files together; its owner can revoke it
and is told of each upload by e-mail.

The token is stored and looked up as a link's is (see `strongroom.drive.links`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError as DatabaseIntegrityError

from strongroom.base.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    QuotaExceeded,
)
from strongroom.base.logging import get_logger
from strongroom.drive import files, transfers
from strongroom.drive.content import BlobUpload, blob_key
from strongroom.drive.files import Names, Preconditions
from strongroom.drive.links import (
    MAX_TOKEN_LENGTH,
    PREFIX_LENGTH,
    aware,
    check_expiry,
    hash_link_password,
    new_token,
)
from strongroom.drive.models import FOLDER, BlobRow, NodeRow, UploadRequestRow, VersionRow
from strongroom.drive.paths import MAX_NAME_BYTES, check_name, join_path
from strongroom.identity.tokens import hash_token
from strongroom.identity.users import get_user
from strongroom.runtime import Runtime
from strongroom.storage.db import TenantSession
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.events import Actor, Target, add_event
from strongroom.tenancy.models import utcnow
from strongroom.tenancy.usage import get_usage, reserve_bytes

log = get_logger(__name__)

ACTIVE = "active"
EXPIRED = "expired"
FULL = "full"
REVOKED = "revoked"

DEFAULT_TITLE = "Upload files"
MAX_TITLE_LENGTH = 200
# How many numbered names ("report (2).pdf" ...) an upload tries before it gives up.
MAX_NAME_ATTEMPTS = 1000
# Creating the file whose name another upload took a moment earlier fails; this many retries.
COMMIT_ATTEMPTS = 3


# Creating, listing and revoking ---------------------------------------------------------


def check_size_limit(value: int | None, field: str) -> int | None:
    if value is not None and value < 1:
        raise InvalidInput(f"{field} {value} is not a number of bytes; give 1 or more, or null")
    return value


def create_upload_request(
    session: TenantSession,
    owner_id: uuid.UUID,
    names: Names,
    *,
    title: str | None = None,
    password: str | None = None,
    expires_at: dt.datetime | None = None,
    max_file_size: int | None = None,
    max_total_size: int | None = None,
    notify: bool = True,
) -> tuple[UploadRequestRow, str]:
    """Create an upload request into the folder at the path; return it and its token, shown once."""
    folder = files.access_node(session, owner_id, names, FOLDER)
    # Whitespace runs become one space, so a title cannot break the e-mail header it goes into.
    text = " ".join((title or "").split()) or DEFAULT_TITLE
    if len(text) > MAX_TITLE_LENGTH:
        raise InvalidInput(f"the title has {len(text)} characters; use at most {MAX_TITLE_LENGTH}")
    token, token_hash = new_token()
    row = UploadRequestRow(
        id=uuid.uuid4(),
        token_hash=token_hash,
        prefix=token[:PREFIX_LENGTH],
        owner_id=owner_id,
        folder_id=folder.id,
        title=text,
        password_hash=hash_link_password(password),
        expires_at=check_expiry(expires_at),
        max_file_size=check_size_limit(max_file_size, "max_file_size"),
        max_total_size=check_size_limit(max_total_size, "max_total_size"),
        bytes_received=0,
        files_received=0,
        notify=notify,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    log.info("upload_request_created", upload_request_id=str(row.id), folder_id=str(folder.id))
    return row, token


def list_upload_requests(session: TenantSession, owner_id: uuid.UUID) -> list[UploadRequestRow]:
    return list(
        session.scalars(
            select(UploadRequestRow)
            .where(UploadRequestRow.owner_id == owner_id)
            .order_by(UploadRequestRow.created_at)
        )
    )


def revoke_upload_request(
    session: TenantSession, owner_id: uuid.UUID, request_id: uuid.UUID
) -> UploadRequestRow:
    """Revoke one of the owner's upload requests; another user's is as unknown as a missing one."""
    row = session.scalars(
        select(UploadRequestRow).where(
            UploadRequestRow.id == request_id, UploadRequestRow.owner_id == owner_id
        )
    ).first()
    if row is None:
        raise NotFound(f"you have no upload request with the id {request_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        log.info("upload_request_revoked", upload_request_id=str(row.id))
    return row


# Opening a request ----------------------------------------------------------------------


def find_upload_request(session: TenantSession, token: str) -> UploadRequestRow | None:
    """Return the upload request of this token in the session's tenant, or None."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return session.scalars(
        select(UploadRequestRow).where(UploadRequestRow.token_hash == hash_token(token))
    ).first()


def state_of(row: UploadRequestRow, now: dt.datetime | None = None) -> str:
    if row.revoked_at is not None:
        return REVOKED
    if row.expires_at is not None and aware(row.expires_at) <= (now or utcnow()):
        return EXPIRED
    if row.max_total_size is not None and row.bytes_received >= row.max_total_size:
        return FULL
    return ACTIVE


def get_folder(session: TenantSession, row: UploadRequestRow) -> NodeRow | None:
    """Return the request's folder, or None when it was purged or is in the trash."""
    folder = session.scalars(
        select(NodeRow).where(NodeRow.id == row.folder_id, NodeRow.owner_id == row.owner_id)
    ).first()
    if folder is None or files.is_trashed(session, folder):
        return None
    return folder


def bytes_left(row: UploadRequestRow) -> int | None:
    """Return the most bytes one more file may have under the request's limits, None for no limit."""
    limits = [row.max_file_size]
    if row.max_total_size is not None:
        limits.append(max(row.max_total_size - row.bytes_received, 0))
    present = [limit for limit in limits if limit is not None]
    return min(present) if present else None


def candidate_names(name: str) -> Iterator[str]:
    """Yield the name, then "stem (2).ext", "stem (3).ext" and so on, each a valid name."""
    yield name
    dot = name.rfind(".")
    stem, extension = (name[:dot], name[dot:]) if dot > 0 else (name, "")
    for number in range(2, MAX_NAME_ATTEMPTS + 1):
        suffix = f" ({number}){extension}"
        room = MAX_NAME_BYTES - len(suffix.encode("utf-8"))
        shortened = stem.encode("utf-8")[:room].decode("utf-8", errors="ignore")
        yield shortened + suffix


# Receiving a file -----------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """A file an outsider uploaded: the name it was sent with, and what was stored."""

    sent_name: str
    stored_name: str
    size: int
    sha256: str


def begin_receiving(
    runtime: Runtime, tenant: TenantInfo, request_id: uuid.UUID, name: str, declared: int | None
) -> BlobUpload:
    """Check that one more file fits the request and the quota, then open its blob.

    The upload is cut off with 413 as soon as it passes the request's limits
    or the tenant's maximum file size, or with 507 when it passes the
    tenant's quota. The tenant's blocked file types apply too.
    """
    check_name(name)
    transfers.check_file_allowed(tenant, name)
    max_size = tenant.max_file_size
    if declared is not None and max_size is not None and declared > max_size:
        raise transfers.file_too_large(tenant, declared, declared=True)
    with runtime.stores.session(tenant) as session:
        row = session.scalars(
            select(UploadRequestRow).where(UploadRequestRow.id == request_id)
        ).one()
        left = bytes_left(row)
        used = get_usage(session)
    if declared is not None and left is not None and declared > left:
        raise _too_large(row, declared)
    room = None if tenant.quota_bytes is None else max(tenant.quota_bytes - used, 0)
    if declared is not None and room is not None and declared > room:
        raise _no_room(tenant, used, declared)

    def limit_error(size: int) -> Exception:
        if max_size is not None and size > max_size:
            return transfers.file_too_large(tenant, size, declared=False)
        if left is not None and size > left:
            return _too_large(row, size)
        return _no_room(tenant, used, size)

    present = [limit for limit in (left, room, max_size) if limit is not None]
    return BlobUpload(
        runtime.blobs,
        runtime.keyring.current(tenant.id),
        runtime.settings.chunk_size,
        size_limit=min(present) if present else None,
        limit_error=limit_error,
    )


def _no_room(tenant: TenantInfo, used: int | None, size: int) -> QuotaExceeded:
    """Return the error for an outsider when the tenant's quota is full, without its figures.

    The tenant's used bytes and quota are its own business: with them, anyone
    holding the link could watch the tenant's storage by sending files.
    """
    log.info("upload_request_quota_full", tenant=tenant.slug, used=used, size=size)
    return QuotaExceeded(
        "this upload request cannot take more files now; tell the person who sent you the link"
    )


def _too_large(row: UploadRequestRow, size: int) -> PayloadTooLarge:
    if row.max_file_size is not None and size > row.max_file_size:
        return PayloadTooLarge(
            f"the file has {size} bytes or more, but this upload request takes files of at most "
            f"{row.max_file_size} bytes; send a smaller file",
            limit=row.max_file_size,
        )
    left = bytes_left(row) or 0
    return PayloadTooLarge(
        f"the file has {size} bytes or more, but this upload request has room for {left} more "
        "bytes in all; send a smaller file or ask its owner for a new request",
        limit=left,
    )


def finish_receiving(
    runtime: Runtime,
    tenant: TenantInfo,
    request_id: uuid.UUID,
    name: str,
    upload: BlobUpload,
    actor: Actor,
) -> Received:
    """Publish the blob as a new file in the request's folder; on any failure, delete the blob.

    The audit event of the received file commits with the file.
    """
    try:
        blob, sha256 = upload.finish()
    except BaseException:
        upload.abort()
        raise
    try:
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                with runtime.stores.session(tenant, write=True) as session:
                    node, _version = _store_new_file(session, tenant, request_id, name, blob, sha256)
                    stored = node.name
                    add_event(
                        session,
                        tenant,
                        "upload_request_file_received",
                        actor,
                        target=Target("upload_request", request_id),
                        new={"node": str(node.id), "size": blob.size, "sha256": sha256},
                    )
                break
            except DatabaseIntegrityError as exc:
                log.info("upload_request_commit_retry", attempt=attempt, error=type(exc).__name__)
                if attempt == COMMIT_ATTEMPTS:
                    raise Conflict(
                        "other uploads to this folder took every name tried at the same time; "
                        "send the file again"
                    ) from exc
    except QuotaExceeded:
        runtime.blobs.delete(blob_key(tenant.id, blob.id))
        raise _no_room(tenant, None, blob.size) from None
    except BaseException:
        runtime.blobs.delete(blob_key(tenant.id, blob.id))
        raise
    runtime.meter.record_upload(tenant, blob.size)
    log.info("upload_request_received", upload_request_id=str(request_id), size=blob.size)
    return Received(sent_name=name, stored_name=stored, size=blob.size, sha256=sha256)


def _store_new_file(
    session: TenantSession,
    tenant: TenantInfo,
    request_id: uuid.UUID,
    name: str,
    blob: BlobRow,
    sha256: str,
) -> tuple[NodeRow, VersionRow]:
    row = session.scalars(select(UploadRequestRow).where(UploadRequestRow.id == request_id)).one()
    folder = get_folder(session, row)
    if folder is None or row.revoked_at is not None:
        raise NotFound("this upload request no longer accepts files; ask its owner for a new one")
    _count_received(session, row, blob.size)
    reserve_bytes(session, tenant, blob.size)
    folder_names = tuple(name for name in files.path_of(session, folder).split("/") if name)
    return _add_under_free_name(session, folder, folder_names, name, blob, sha256)


def _count_received(session: TenantSession, row: UploadRequestRow, size: int) -> None:
    """Add the file to the request's totals, or raise PayloadTooLarge past its total limit.

    One conditional UPDATE, so two uploads at once cannot both pass the limit.
    """
    statement = (
        update(UploadRequestRow)
        .where(
            UploadRequestRow.id == row.id,
            UploadRequestRow.max_total_size.is_(None)
            | (UploadRequestRow.bytes_received + size <= UploadRequestRow.max_total_size),
        )
        .values(
            bytes_received=UploadRequestRow.bytes_received + size,
            files_received=UploadRequestRow.files_received + 1,
        )
    )
    if session.execute(statement).rowcount != 1:
        session.refresh(row)
        raise _too_large(row, size)


def _add_under_free_name(
    session: TenantSession,
    folder: NodeRow,
    folder_names: Names,
    name: str,
    blob: BlobRow,
    sha256: str,
) -> tuple[NodeRow, VersionRow]:
    """Create a new file under the first name no live file or folder of the folder has.

    If-None-Match "*" makes `add_version` fail rather than add a version when
    another upload took the name since it was checked. The savepoint then
    undoes that attempt alone.
    """
    only_new = Preconditions(if_none_match=["*"])
    for candidate in candidate_names(name):
        if files.get_child(session, folder.id, candidate) is not None:
            continue
        try:
            with session.begin_nested():
                return files.add_version(
                    session,
                    folder.owner_id,
                    (candidate,),
                    _copy(blob),
                    sha256,
                    None,
                    only_new,
                    base_id=folder.id,
                )
        except (PreconditionFailed, Conflict, DatabaseIntegrityError):
            continue
    raise Conflict(
        f"{join_path((*folder_names, name))!r} and {MAX_NAME_ATTEMPTS - 1} numbered names after it "
        "are taken; send the file under another name"
    )


def _copy(blob: BlobRow) -> BlobRow:
    """Return a new row of the blob for one attempt, because a rolled-back row cannot be added again."""
    return BlobRow(
        tenant_id=blob.tenant_id,
        id=blob.id,
        size=blob.size,
        stored_size=blob.stored_size,
        chunk_size=blob.chunk_size,
        key_version=blob.key_version,
        wrapped_key=blob.wrapped_key,
    )


# Telling the owner ----------------------------------------------------------------------


def notify_owner(
    runtime: Runtime, tenant: TenantInfo, request_id: uuid.UUID, received: list[Received]
) -> None:
    """E-mail the request's owner about files just received, unless the owner turned it off."""
    if not received:
        return
    with runtime.stores.session(tenant) as session:
        row = session.scalars(
            select(UploadRequestRow).where(UploadRequestRow.id == request_id)
        ).one()
        owner = get_user(session, row.owner_id)
        folder = get_folder(session, row)
        folder_path = files.path_of(session, folder) if folder is not None else None
    if not row.notify or owner is None:
        return
    lines = [f"{len(received)} file(s) arrived through your upload request \"{row.title}\""]
    lines.append(f"in the folder /{folder_path} of {tenant.name}:" if folder_path is not None else "")
    lines.append("")
    lines += [f"  {item.stored_name} ({item.size} bytes)" for item in received]
    message = runtime.mailer.compose(owner.email, f"New files: {row.title}", "\n".join(lines) + "\n")
    runtime.mailer.send_later(message, purpose="upload_request_received")
