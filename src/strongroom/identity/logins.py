"""Password logins: the check, and the record of successes and failures per user.

A failed login looks the same whatever failed (unknown address, wrong
password, disabled user), and an unknown address costs the same password
hash as a known one, so the reply and its timing do not tell which
addresses have accounts.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select

from strongroom.base.errors import InvalidInput
from strongroom.base.logging import get_logger
from strongroom.identity import passwords
from strongroom.identity.models import LoginRecordRow, UserRow
from strongroom.identity.users import get_user_by_email
from strongroom.storage.db import TenantSession
from strongroom.tenancy.models import utcnow

log = get_logger(__name__)

def verify_login(session: TenantSession, email: str, password: str) -> UserRow | None:
    """Return the active user whose e-mail and password these are, or None.

    A wrong password counts as a failure on the user's login record, in the
    caller's transaction, which the caller must therefore commit.
    """
    try:
        user = get_user_by_email(session, email)
    except InvalidInput:
        user = None
    if user is None or user.password_hash is None:
        # A guest who has not accepted the invitation yet has no password to match.
        passwords.verify_for_unknown_user(password)
        return None
    if not passwords.verify_password(user.password_hash, password):
        record_failure(session, user.id)
        return None
    if not user.is_usable():
        return None
    return user


def _record(session: TenantSession, user_id: uuid.UUID) -> LoginRecordRow:
    record = session.scalars(
        select(LoginRecordRow).where(LoginRecordRow.user_id == user_id).with_for_update()
    ).first()
    if record is None:
        record = LoginRecordRow(user_id=user_id, failures_since_login=0)
        session.add(record)
    return record


def record_failure(session: TenantSession, user_id: uuid.UUID) -> None:
    record = _record(session, user_id)
    record.failures_since_login += 1
    record.last_failure_at = utcnow()
    session.flush()
    log.info("login_failed", user_id=str(user_id), failures=record.failures_since_login)


def record_success(session: TenantSession, user_id: uuid.UUID) -> None:
    record = _record(session, user_id)
    record.failures_since_login = 0
    record.last_login_at = utcnow()
    session.flush()
    log.info("login_succeeded", user_id=str(user_id))


def login_records(session: TenantSession) -> dict[uuid.UUID, LoginRecordRow]:
    return {row.user_id: row for row in session.scalars(select(LoginRecordRow))}
