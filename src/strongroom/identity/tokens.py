"""API tokens: bearer secrets that act as one user of one tenant.

A token is `sr_` and 43 characters of random base64url (256 bits). Only its
SHA-256 is stored; a fast hash suffices because the secret is random, not
chosen by a person. Tokens are looked up within the tenant of the request, so
a token presented to another tenant is not found there and fails exactly like
a made-up one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import select, update

from strongroom.base.errors import Forbidden, InvalidInput, NotAuthenticated, NotFound
from strongroom.base.logging import get_logger
from strongroom.base.scoping import tenant_scoped_key
from strongroom.identity.models import GUEST, TokenRow, UserRow
from strongroom.storage.db import TenantSession
from strongroom.tenancy.models import utcnow

log = get_logger(__name__)

TOKEN_PREFIX = "sr_"
MAX_EXPIRY_DAYS = 3650
# Writing last_used_at on every request would turn each read into a write. Once a
# minute is precise enough to tell a stale token from a used one.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """The user a request acts as, and the token it came with."""

    user_id: uuid.UUID
    role: str
    token_id: uuid.UUID | None
    token_needs_touch: bool = False
    expires_at: dt.datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_guest(self) -> bool:
        return self.role == GUEST


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    session: TenantSession, user: UserRow, name: str = "", expires_in_days: int | None = None
) -> tuple[TokenRow, str]:
    """Create a token for the user; return its row and the secret, which is shown only once."""
    if user.is_guest:
        raise Forbidden(
            f"{user.email} is a guest, and guests get no API tokens: they reach what is "
            "shared with them in the web UI"
        )
    expires_at = None
    if expires_in_days is not None:
        if not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
            raise InvalidInput(
                f"expiry of {expires_in_days} days is out of range; use 1 to {MAX_EXPIRY_DAYS}"
            )
        expires_at = utcnow() + dt.timedelta(days=expires_in_days)

    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = TokenRow(
        id=uuid.uuid4(),
        user_id=user.id,
        name=name[:200],
        token_hash=hash_token(secret),
        prefix=secret[:10],
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    log.info("token_created", token_id=str(row.id), user_id=str(user.id))
    return row, secret


def authenticate_token(session: TenantSession, secret: str) -> Principal:
    """Return who the token acts as, or raise NotAuthenticated with one message for every failure."""
    failure = NotAuthenticated("the bearer token is invalid, expired or revoked")
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 100:
        raise failure

    found = session.execute(
        select(TokenRow, UserRow)
        .join(UserRow, (UserRow.tenant_id == TokenRow.tenant_id) & (UserRow.id == TokenRow.user_id))
        .where(TokenRow.token_hash == hash_token(secret))
    ).first()
    if found is None:
        raise failure
    token, user = found
    now = utcnow()
    if token.revoked_at is not None or not user.is_usable(now):
        raise failure
    if token.expires_at is not None and _aware(token.expires_at) <= now:
        raise failure

    stale = token.last_used_at is None or now - _aware(token.last_used_at) > LAST_USED_RESOLUTION
    # A guest's token works no longer than the guest, and the token cache honours this expiry.
    ends = [_aware(moment) for moment in (token.expires_at, user.expires_at) if moment is not None]
    return Principal(
        user_id=user.id,
        role=user.role,
        token_id=token.id,
        token_needs_touch=stale,
        expires_at=min(ends) if ends else None,
    )



def touch_token(session: TenantSession, token_id: uuid.UUID) -> None:
    """Record that a token was used, in a write transaction of its own.

    The caller calls it only when `authenticate_token` found the last record
    older than LAST_USED_RESOLUTION.
    """
    session.execute(update(TokenRow).where(TokenRow.id == token_id).values(last_used_at=utcnow()))


def list_tokens(session: TenantSession, user_id: uuid.UUID | None = None) -> list[TokenRow]:
    query = select(TokenRow).order_by(TokenRow.created_at)
    if user_id is not None:
        query = query.where(TokenRow.user_id == user_id)
    return list(session.scalars(query))


def revoke_token(session: TenantSession, token_id: uuid.UUID, user_id: uuid.UUID | None) -> TokenRow:
    """Revoke a token; with `user_id`, only one of that user's own tokens."""
    query = select(TokenRow).where(TokenRow.id == token_id)
    if user_id is not None:
        query = query.where(TokenRow.user_id == user_id)
    token = session.scalars(query).first()
    if token is None:
        raise NotFound(f"no token has the id {token_id}")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        log.info("token_revoked", token_id=str(token.id))
    return token


def audited(row: TokenRow) -> dict[str, str | None]:
    """Return a token as the audit trail records it: its owner, name and prefix, never the secret."""
    return {
        "user": str(row.user_id),
        "name": row.name,
        "prefix": row.prefix,
        "expires": _aware(row.expires_at).isoformat() if row.expires_at else None,
    }


def _aware(moment: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes for timezone-aware columns; they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


class TokenCache:
    """Tokens this process checked recently, so that most requests skip the database.

    Only valid tokens are cached, under a key built from the tenant and the
    token's hash, so a token never matches in another tenant and an unknown
    token is checked every time. An entry lives `seconds` at most and never
    past the token's expiry. Revoking through this process clears the cache at
    once. A revocation made elsewhere (the command line, another replica) takes
    effect here within `seconds`, and so does a change of the user's role or
    status.
    """

    MAX_ENTRIES = 10_000

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, tenant_id: uuid.UUID, secret: str) -> Principal | None:
        if self.seconds <= 0:
            return None
        key = self._key(tenant_id, secret)
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def put(self, tenant_id: uuid.UUID, secret: str, principal: Principal) -> None:
        if self.seconds <= 0:
            return
        lifetime = self.seconds
        if principal.expires_at is not None:
            lifetime = min(lifetime, (principal.expires_at - utcnow()).total_seconds())
        entry = (time.monotonic() + lifetime, principal)
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[self._key(tenant_id, secret)] = entry

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    @staticmethod
    def _key(tenant_id: uuid.UUID, secret: str) -> str:
        return tenant_scoped_key(tenant_id, "token", hash_token(secret))
