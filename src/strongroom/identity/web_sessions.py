"""Browser sessions: a random secret in a cookie, stored as its SHA-256 in the tenant's store.

Sessions are looked up within the tenant of the request, so a cookie of one
tenant presented to another is not found there and fails exactly like a
made-up one. A session ends after `idle` without a request, at its absolute
expiry, at logout, and when its user is disabled.

The CSRF token of a session is derived from its secret with HMAC, so it is
stored nowhere, changes with every new session, and only the holder of the
cookie can compute it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, select, update

from strongroom.base.errors import NotAuthenticated
from strongroom.base.logging import get_logger
from strongroom.identity.models import GUEST, UserRow, WebSessionRow
from strongroom.identity.tokens import hash_token
from strongroom.storage.db import TenantSession
from strongroom.tenancy.models import utcnow

log = get_logger(__name__)

# A session that passed the password has this long to present the second factor.
SECOND_FACTOR_WINDOW = dt.timedelta(minutes=5)
# As for API tokens, writing last_seen_at once a minute is enough to tell idle from active.
LAST_SEEN_RESOLUTION = dt.timedelta(minutes=1)
MAX_SECRET_LENGTH = 100
CSRF_CONTEXT = b"strongroom/csrf/v1"


@dataclass(frozen=True)
class WebIdentity:
    """The user a browser session acts as."""

    session_id: uuid.UUID
    user_id: uuid.UUID
    email: str
    display_name: str
    role: str
    awaiting_second_factor: bool
    needs_touch: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_guest(self) -> bool:
        return self.role == GUEST


def csrf_token_of(secret: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), CSRF_CONTEXT, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def open_session(
    session: TenantSession,
    user_id: uuid.UUID,
    lifetime: dt.timedelta,
    awaiting_second_factor: bool = False,
) -> tuple[WebSessionRow, str]:
    """Start a session for the user and return its row and the secret for the cookie."""
    now = utcnow()
    secret = secrets.token_urlsafe(32)
    row = WebSessionRow(
        id=uuid.uuid4(),
        user_id=user_id,
        token_hash=hash_token(secret),
        awaiting_second_factor=awaiting_second_factor,
        created_at=now,
        last_seen_at=now,
        expires_at=now + (SECOND_FACTOR_WINDOW if awaiting_second_factor else lifetime),
    )
    session.add(row)
    session.flush()
    log.info("web_session_opened", session_id=str(row.id), user_id=str(user_id))
    return row, secret


def authenticate_session(session: TenantSession, secret: str, idle: dt.timedelta) -> WebIdentity:
    """Return who the session acts as, or raise NotAuthenticated with one message for every failure."""
    failure = NotAuthenticated("the session is unknown or has ended; log in")
    if not secret or len(secret) > MAX_SECRET_LENGTH:
        raise failure
    found = session.execute(
        select(WebSessionRow, UserRow)
        .join(
            UserRow,
            (UserRow.tenant_id == WebSessionRow.tenant_id) & (UserRow.id == WebSessionRow.user_id),
        )
        .where(WebSessionRow.token_hash == hash_token(secret))
    ).first()
    if found is None:
        raise failure
    row, user = found
    now = utcnow()
    if not user.is_usable(now) or _aware(row.expires_at) <= now:
        raise failure
    if _aware(row.last_seen_at) + idle <= now:
        raise failure
    return WebIdentity(
        session_id=row.id,
        user_id=user.id,
        email=user.email,
        display_name=user.display_name,
        role=user.role,
        awaiting_second_factor=row.awaiting_second_factor,
        needs_touch=now - _aware(row.last_seen_at) > LAST_SEEN_RESOLUTION,
    )


def touch_session(session: TenantSession, session_id: uuid.UUID) -> None:
    session.execute(
        update(WebSessionRow).where(WebSessionRow.id == session_id).values(last_seen_at=utcnow())
    )


def end_session(session: TenantSession, session_id: uuid.UUID) -> None:
    session.execute(delete(WebSessionRow).where(WebSessionRow.id == session_id))
    log.info("web_session_ended", session_id=str(session_id))


def end_user_sessions(session: TenantSession, user_id: uuid.UUID) -> None:
    session.execute(delete(WebSessionRow).where(WebSessionRow.user_id == user_id))
    log.info("web_sessions_ended", user_id=str(user_id))


def remove_stale_sessions(session: TenantSession, user_id: uuid.UUID, idle: dt.timedelta) -> None:
    """Delete the user's sessions that expired or went idle, which nothing else removes."""
    now = utcnow()
    session.execute(
        delete(WebSessionRow).where(
            WebSessionRow.user_id == user_id,
            (WebSessionRow.expires_at <= now) | (WebSessionRow.last_seen_at <= now - idle),
        )
    )


def _aware(moment: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes for timezone-aware columns; they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
