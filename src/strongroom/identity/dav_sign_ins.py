"""WebDAV sign-ins in the audit trail: every failure, and a success once per app password and hour.

WebDAV clients send their credentials with every request, so one event per
request would bury the trail. A successful sign-in is recorded when the app
password's `sign_in_recorded_at` is older than `SIGN_IN_RECORD_INTERVAL`,
through a conditional update, so that of concurrent requests only one writes
the event. Each failed sign-in with credentials is recorded: the WebDAV
layer's failure limit (`basic_auth_failures_per_minute` per client address)
bounds how many a client can write before it gets 429 without an event.
"""

from __future__ import annotations

import uuid

from sqlalchemy import or_, update

from strongroom.base.errors import InvalidInput
from strongroom.identity.app_passwords import SIGN_IN_RECORD_INTERVAL, AppPasswordLogin
from strongroom.identity.models import AppPasswordRow
from strongroom.identity.users import get_user_by_email
from strongroom.storage.db import TenantSession
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.events import Actor, Target, add_event
from strongroom.tenancy.models import utcnow


def record_sign_in(
    session: TenantSession, tenant: TenantInfo, login: AppPasswordLogin, actor: Actor
) -> bool:
    """Add a `dav_login` event unless one was recorded for the app password within the period.

    Returns whether this call recorded it.
    """
    now = utcnow()
    claimed = session.execute(
        update(AppPasswordRow)
        .where(
            AppPasswordRow.id == login.app_password_id,
            or_(
                AppPasswordRow.sign_in_recorded_at.is_(None),
                AppPasswordRow.sign_in_recorded_at < now - SIGN_IN_RECORD_INTERVAL,
            ),
        )
        .values(sign_in_recorded_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return False
    add_event(
        session,
        tenant,
        "dav_login",
        actor,
        target=Target("app_password", login.app_password_id),
        new={
            "name": login.name,
            "interval_seconds": int(SIGN_IN_RECORD_INTERVAL.total_seconds()),
        },
    )
    return True


def record_failed_sign_in(
    session: TenantSession, tenant: TenantInfo, email: str | None, actor: Actor
) -> None:
    """Add a `dav_login_failed` event, naming the account when `email` is a user's.

    The address typed is not stored: it may be a password typed in the wrong field.
    """
    user_id = _user_id_of(session, email)
    add_event(
        session,
        tenant,
        "dav_login_failed",
        actor,
        target=Target("user", user_id) if user_id is not None else None,
        new={"method": "app_password", "known_account": user_id is not None},
    )


def _user_id_of(session: TenantSession, email: str | None) -> uuid.UUID | None:
    if not email:
        return None
    try:
        user = get_user_by_email(session, email)
    except InvalidInput:
        return None
    return user.id if user is not None else None

