"""Public links: a secret URL that lets anyone who has it download a file or a folder.

A link's token is 32 random bytes in base64url. Only its SHA-256 is stored,
as for API tokens, and it is looked up within the tenant of the request, so a
token presented under another tenant's base URL finds nothing there and fails
exactly like a made-up one. A link may carry a password (argon2id), an expiry
and a download limit, and its owner can revoke it.

Downloads are counted in shares of the content sent, so that Range requests
do not each count as a whole download: a full download counts one, a range
counts its length over the file's size, and the part of a response the
client did not receive is given back. The shares are integers in millionths
of a download (`UNIT`), and each charge is one conditional UPDATE, so two
concurrent last downloads cannot both get through.

Like `strongroom.drive.files`, every function takes a session bound to the
tenant and leaves the commit to the caller.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import BigInteger, cast, select, update

from strongroom.base.errors import InvalidInput, NotFound
from strongroom.base.logging import get_logger
from strongroom.drive import files
from strongroom.drive.files import Names
from strongroom.drive.models import FOLDER, LinkRow, NodeRow
from strongroom.drive.paths import MAX_DEPTH, join_path
from strongroom.identity.models import UserRow
from strongroom.identity.passwords import MIN_PASSWORD_LENGTH, hash_password, verify_password
from strongroom.identity.tokens import hash_token
from strongroom.storage.db import TenantSession
from strongroom.tenancy.models import utcnow

log = get_logger(__name__)

# Download counts are kept in millionths, so that a range of a file counts its share.
UNIT = 1_000_000
# How far past its limit a link goes for a resumed download (a range that does not start
# at byte 0). The bytes a server hands to a connection that then breaks were charged, but
# the client may not have them, so it requests them again. In all, a link serves at most
# this share of one download more than its limit.
RESUME_TOLERANCE = UNIT // 20
MAX_DOWNLOADS = 1_000_000
# Far enough for any sharing. A tenant setting may lower it.
MAX_LIFETIME = dt.timedelta(days=3650)
TOKEN_BYTES = 32
PREFIX_LENGTH = 6
# base64url of TOKEN_BYTES is 43 characters, so anything much longer is not a token.
MAX_TOKEN_LENGTH = 100

ACTIVE = "active"
EXPIRED = "expired"
EXHAUSTED = "exhausted"
REVOKED = "revoked"


def new_token() -> tuple[str, str]:
    """Return a new secret token and the SHA-256 that is stored in its place."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, hash_token(token)


def aware(moment: dt.datetime) -> dt.datetime:
    """Return the moment with its UTC zone: SQLite returns naive datetimes, which are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def check_expiry(
    expires_at: dt.datetime | None, now: dt.datetime | None = None, max_days: int | None = None
) -> dt.datetime | None:
    """Return the expiry in UTC, or raise InvalidInput when it is naive, past or too far.

    `max_days` is the tenant's `link_max_expiry_days` setting: with it, a link
    without an expiry gets the latest one allowed.
    """
    now = now or utcnow()
    if expires_at is None:
        return None if max_days is None else now + dt.timedelta(days=max_days)
    if expires_at.tzinfo is None:
        raise InvalidInput(
            f"expires_at {expires_at.isoformat()} has no UTC offset; add one, such as "
            "2030-01-31T18:00:00+01:00 or a trailing Z"
        )
    try:
        moment = expires_at.astimezone(dt.UTC)
    except OverflowError:
        raise InvalidInput(
            f"expires_at {expires_at.isoformat()} is out of range; give a time within the next "
            f"{MAX_LIFETIME.days} days"
        ) from None
    if moment <= now:
        raise InvalidInput(
            f"expires_at {expires_at.isoformat()} is in the past; give a future time"
        )
    if moment - now > MAX_LIFETIME:
        raise InvalidInput(
            f"expires_at {expires_at.isoformat()} is more than {MAX_LIFETIME.days} days away; "
            "choose an earlier time"
        )
    if max_days is not None and moment - now > dt.timedelta(days=max_days):
        raise InvalidInput(
            f"expires_at {expires_at.isoformat()} is more than {max_days} days away, the most "
            "this tenant's link_max_expiry_days setting allows; choose an earlier time"
        )
    return moment


def check_max_downloads(max_downloads: int | None) -> int | None:
    if max_downloads is not None and not 1 <= max_downloads <= MAX_DOWNLOADS:
        raise InvalidInput(
            f"max_downloads {max_downloads} is out of range; use 1 to {MAX_DOWNLOADS}, or null for "
            "no limit"
        )
    return max_downloads


def hash_link_password(password: str | None) -> str | None:
    """Return the argon2id hash of a link password, or None for a link without one.

    An empty password is rejected, not taken for none: a client that sends one
    may believe it protected the link. Web forms, whose empty fields browsers
    always send, turn an empty field into None themselves. A password of white
    space only is rejected too, because it looks empty wherever it is shown or typed.
    """
    if password is None:
        return None
    if password == "":
        raise InvalidInput(
            f"the password is empty; give one of at least {MIN_PASSWORD_LENGTH} characters, or "
            "leave the password field out for no password"
        )
    if not password.strip():
        raise InvalidInput(
            f"the password contains only white space; give one of at least {MIN_PASSWORD_LENGTH} "
            "characters with letters, digits or symbols, or leave the password field out for no "
            "password"
        )
    return hash_password(password)


# Creating, listing and revoking ---------------------------------------------------------


def create_link(
    session: TenantSession,
    owner_id: uuid.UUID,
    names: Names,
    password: str | None,
    expires_at: dt.datetime | None,
    max_downloads: int | None,
    max_days: int | None = None,
) -> tuple[LinkRow, str]:
    """Create a link to the file or folder at the path; return it and its token, shown only once."""
    if not names:
        raise InvalidInput("the root folder cannot be shared by a link; link a folder inside it")
    node = files.access_node(session, owner_id, names)
    token, token_hash = new_token()
    link = LinkRow(
        id=uuid.uuid4(),
        token_hash=token_hash,
        prefix=token[:PREFIX_LENGTH],
        owner_id=owner_id,
        node_id=node.id,
        kind=node.kind,
        password_hash=hash_link_password(password),
        expires_at=check_expiry(expires_at, max_days=max_days),
        max_downloads=check_max_downloads(max_downloads),
        download_units=0,
        created_at=utcnow(),
    )
    session.add(link)
    session.flush()
    log.info("link_created", link_id=str(link.id), node_id=str(node.id), kind=node.kind)
    return link, token


def list_links(session: TenantSession, owner_id: uuid.UUID) -> list[LinkRow]:
    return list(
        session.scalars(
            select(LinkRow).where(LinkRow.owner_id == owner_id).order_by(LinkRow.created_at)
        )
    )


def access_own_link(session: TenantSession, owner_id: uuid.UUID, link_id: uuid.UUID) -> LinkRow:
    """Return one of the owner's links; another user's link is as unknown as a missing one."""
    link = session.scalars(
        select(LinkRow).where(LinkRow.id == link_id, LinkRow.owner_id == owner_id)
    ).first()
    if link is None:
        raise NotFound(f"you have no link with the id {link_id}")
    return link


def revoke_link(session: TenantSession, owner_id: uuid.UUID, link_id: uuid.UUID) -> LinkRow:
    link = access_own_link(session, owner_id, link_id)
    if link.revoked_at is None:
        link.revoked_at = utcnow()
        log.info("link_revoked", link_id=str(link.id))
    return link


# Opening a link -------------------------------------------------------------------------


def find_link(session: TenantSession, token: str) -> LinkRow | None:
    """Return the link of this token in the session's tenant, or None."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return session.scalars(select(LinkRow).where(LinkRow.token_hash == hash_token(token))).first()


def owner_is_active(session: TenantSession, owner_id: uuid.UUID) -> bool:
    status = session.scalar(select(UserRow.status).where(UserRow.id == owner_id))
    return status == "active"


def state_of(link: LinkRow, now: dt.datetime | None = None, resuming: bool = False) -> str:
    """Return whether the link can be used: active, or revoked, expired or exhausted.

    With `resuming`, for a range that does not start at byte 0, a link whose
    downloads are used up is still active within RESUME_TOLERANCE.
    """
    if link.revoked_at is not None:
        return REVOKED
    if link.expires_at is not None and aware(link.expires_at) <= (now or utcnow()):
        return EXPIRED
    if link.max_downloads is not None:
        limit = link.max_downloads * UNIT + (RESUME_TOLERANCE if resuming else 0)
        if link.download_units >= limit:
            return EXHAUSTED
    return ACTIVE


def check_password(link: LinkRow, password: str) -> bool:
    return verify_password(link.password_hash, password)


def get_target(session: TenantSession, link: LinkRow) -> NodeRow | None:
    """Return the linked file or folder, or None when it was purged or is in the trash."""
    node = session.scalars(
        select(NodeRow).where(NodeRow.id == link.node_id, NodeRow.owner_id == link.owner_id)
    ).first()
    if node is None or files.is_trashed(session, node):
        return None
    return node


def resolve_below(session: TenantSession, folder: NodeRow, names: Names) -> NodeRow | None:
    """Return the live node at a path relative to a linked folder, or None."""
    node = folder
    for name in names:
        if node.kind != FOLDER:
            return None
        child = files.get_child(session, node.id, name)
        if child is None:
            return None
        node = child
    return node


@dataclass(frozen=True)
class TreeItem:
    """A file or folder below a linked folder, by its path relative to that folder."""

    names: Names
    node: NodeRow

    @property
    def path(self) -> str:
        return join_path(self.names)


def walk_tree(session: TenantSession, folder: NodeRow) -> list[TreeItem]:
    """Return every live file and folder below a folder, depth first, folders before their contents."""
    found: list[TreeItem] = []
    pending: list[tuple[Names, NodeRow]] = [((), folder)]
    while pending:
        names, current = pending.pop()
        if len(names) > MAX_DEPTH:
            continue
        children = files.list_children(session, current)
        for child in reversed(children):
            if child.kind == FOLDER:
                pending.append(((*names, child.name), child))
        for child in children:
            found.append(TreeItem((*names, child.name), child))
    found.sort(key=lambda item: item.names)
    return found


# Counting downloads ---------------------------------------------------------------------


def share_of(length: int, size: int) -> int:
    """Return the units a response of `length` bytes of a `size`-byte file uses: whole = UNIT.

    Rounded up, so that ranges never add up to less than the bytes they sent.
    An empty file counts one whole download.
    """
    if size <= 0:
        return UNIT
    return min(UNIT, -(-length * UNIT // size))


def charge_download(
    session: TenantSession, link_id: uuid.UUID, units: int, resuming: bool = False
) -> bool:
    """Add `units` to the link's count if it stays within the limit; return whether it did.

    One conditional UPDATE: of two requests that both want the last download,
    the database lets exactly one through. A resumed download (`resuming`)
    may pass the limit by RESUME_TOLERANCE.
    """
    tolerance = RESUME_TOLERANCE if resuming else 0
    statement = (
        update(LinkRow)
        .where(
            LinkRow.id == link_id,
            LinkRow.revoked_at.is_(None),
            (LinkRow.max_downloads.is_(None))
            # As BIGINT: a limit of a million downloads is 10^12 units, past PostgreSQL's INTEGER.
            | (
                LinkRow.download_units + units
                <= cast(LinkRow.max_downloads, BigInteger) * UNIT + tolerance
            ),
        )
        .values(download_units=LinkRow.download_units + units)
    )
    return session.execute(statement).rowcount == 1


def refund_download(session: TenantSession, link_id: uuid.UUID, units: int) -> None:
    """Give back the units of bytes a client did not receive."""
    if units <= 0:
        return
    session.execute(
        update(LinkRow)
        .where(LinkRow.id == link_id, LinkRow.download_units >= units)
        .values(download_units=LinkRow.download_units - units)
    )


def downloads_used(link: LinkRow) -> float:
    return link.download_units / UNIT


def path_of_target(session: TenantSession, link: LinkRow) -> str | None:
    """Return the owner's current path of the linked node, None when it is gone or trashed."""
    node = get_target(session, link)
    return None if node is None else files.path_of(session, node)
