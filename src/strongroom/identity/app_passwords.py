"""App passwords: secrets that WebDAV clients send with the user's e-mail address over HTTP Basic.

The server generates every app password: 32 characters of random base64url
(192 bits). Only its SHA-256 is stored, as for API tokens. A fast hash is
enough because the secret is random, and a slow one (argon2id) would cost
about 50 ms on each request, since WebDAV clients send Basic credentials with
every request. A user may hold several app passwords, one per device, and
revoke each one alone without changing the account password.

Look-ups run within the tenant of the request and match the e-mail address
and the hash together. So a password of another tenant, another user's
password, a revoked one and an unknown one all fail with the same error.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select, update

from strongroom.base.errors import Forbidden, InvalidInput, NotAuthenticated, NotFound
from strongroom.base.logging import get_logger
from strongroom.identity.models import AppPasswordRow, UserRow
from strongroom.identity.passwords import typeable_secret
from strongroom.identity.tokens import LAST_USED_RESOLUTION, Principal, hash_token
from strongroom.identity.users import normalise_email
from strongroom.storage.db import TenantSession
from strongroom.tenancy.models import utcnow

log = get_logger(__name__)

# 32 URL-safe characters: about 192 bits of entropy.
APP_PASSWORD_LENGTH = 32
MAX_NAME_LENGTH = 200
# Longer credentials are rejected before hashing: no app password is this long.
MAX_SECRET_LENGTH = 100
# The maximum number of live app passwords per user, so that a script in a loop cannot
# fill the table.
MAX_PER_USER = 100


# A WebDAV client signs in on every request, so the audit trail records a successful
# sign-in with an app password at most once per interval (identity/dav_sign_ins.py).
SIGN_IN_RECORD_INTERVAL = dt.timedelta(hours=1)


@dataclass(frozen=True)
class AppPasswordLogin:
    """The user that an app password acts as, and whether its use needs recording.

    `needs_touch` is due for `last_used_at`, `sign_in_due` for the audit trail.
    """

    principal: Principal
    app_password_id: uuid.UUID
    needs_touch: bool
    name: str = ""
    sign_in_due: bool = False


def create_app_password(
    session: TenantSession, user: UserRow, name: str = ""
) -> tuple[AppPasswordRow, str]:
    """Create an app password for the user; return its row and the secret, shown only once."""
    if user.is_guest:
        raise Forbidden(
            f"{user.email} is a guest, and guests get no app passwords: they reach what is "
            "shared with them in the web UI"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(
            f"the app password name has {len(name)} characters; use at most {MAX_NAME_LENGTH}"
        )
    live = len(list_app_passwords(session, user.id, include_revoked=False))
    if live >= MAX_PER_USER:
        raise InvalidInput(
            f"{user.email} already has {live} app passwords; revoke unused ones first"
        )

    secret = typeable_secret(APP_PASSWORD_LENGTH)
    row = AppPasswordRow(
        id=uuid.uuid4(), user_id=user.id, name=name, password_hash=hash_token(secret)
    )
    session.add(row)
    session.flush()
    log.info("app_password_created", app_password_id=str(row.id), user_id=str(user.id))
    return row, secret


def authenticate_app_password(session: TenantSession, email: str, secret: str) -> AppPasswordLogin:
    """Return who the credentials act as, or raise NotAuthenticated with one message for every failure."""
    failure = NotAuthenticated(
        "the e-mail address or the app password is wrong, or the app password was revoked; "
        "create a new one with `strongroom app-password create` or the API"
    )
    if not secret or len(secret) > MAX_SECRET_LENGTH:
        raise failure
    try:
        address = normalise_email(email)
    except InvalidInput:
        raise failure from None

    found = session.execute(
        select(AppPasswordRow, UserRow)
        .join(
            UserRow,
            (UserRow.tenant_id == AppPasswordRow.tenant_id) & (UserRow.id == AppPasswordRow.user_id),
        )
        .where(AppPasswordRow.password_hash == hash_token(secret), UserRow.email == address)
    ).first()
    if found is None:
        raise failure
    app_password, user = found
    # Guests get no app passwords; one made before a user became a guest must not work either.
    if app_password.revoked_at is not None or not user.is_usable() or user.is_guest:
        raise failure

    now = utcnow()
    last_used = app_password.last_used_at
    stale = last_used is None or now - _as_utc(last_used) > LAST_USED_RESOLUTION
    recorded = app_password.sign_in_recorded_at
    principal = Principal(user_id=user.id, role=user.role, token_id=None)
    return AppPasswordLogin(
        principal,
        app_password.id,
        needs_touch=stale,
        name=app_password.name,
        sign_in_due=recorded is None or now - _as_utc(recorded) > SIGN_IN_RECORD_INTERVAL,
    )


def touch_app_password(session: TenantSession, app_password_id: uuid.UUID) -> None:
    """Record that an app password was used, in a write transaction of its own.

    The caller calls it only when `authenticate_app_password` found the last
    record older than LAST_USED_RESOLUTION.
    """
    session.execute(
        update(AppPasswordRow)
        .where(AppPasswordRow.id == app_password_id)
        .values(last_used_at=utcnow())
    )


def list_app_passwords(
    session: TenantSession, user_id: uuid.UUID | None = None, include_revoked: bool = True
) -> list[AppPasswordRow]:
    query = select(AppPasswordRow).order_by(AppPasswordRow.created_at)
    if user_id is not None:
        query = query.where(AppPasswordRow.user_id == user_id)
    if not include_revoked:
        query = query.where(AppPasswordRow.revoked_at.is_(None))
    return list(session.scalars(query))


def revoke_app_password(
    session: TenantSession, app_password_id: uuid.UUID, user_id: uuid.UUID | None
) -> AppPasswordRow:
    """Revoke an app password; with `user_id`, only one of that user's own."""
    query = select(AppPasswordRow).where(AppPasswordRow.id == app_password_id)
    if user_id is not None:
        query = query.where(AppPasswordRow.user_id == user_id)
    row = session.scalars(query).first()
    if row is None:
        raise NotFound(f"no app password has the id {app_password_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        log.info("app_password_revoked", app_password_id=str(row.id))
    return row


def _as_utc(moment: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes for timezone-aware columns; they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def audited(row: AppPasswordRow) -> dict[str, str]:
    """Return an app password as the audit trail records it: its owner and name, never the secret."""
    return {"user": str(row.user_id), "name": row.name}
