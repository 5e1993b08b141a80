"""Users of a tenant: the same e-mail address in two tenants is two unrelated users."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError as DatabaseIntegrityError

from strongroom.base.errors import AlreadyExists, InvalidInput, NotFound
from strongroom.base.logging import get_logger
from strongroom.identity.models import ROLES, UserRow
from strongroom.identity.passwords import hash_password
from strongroom.storage.db import TenantSession

log = get_logger(__name__)

ACTIVE = "active"

# A pragmatic check, not RFC 5322: one @, no spaces, a dot in the domain.
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def normalise_email(email: str) -> str:
    address = email.strip().lower()
    if len(address) > 320 or not EMAIL_PATTERN.fullmatch(address):
        raise InvalidInput(f"{email!r} is not an e-mail address; use the form name@example.org")
    return address


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"role {role!r} does not exist; use one of: {', '.join(ROLES)}")
    return role


def create_user(
    session: TenantSession,
    email: str,
    password: str,
    role: str = "member",
    display_name: str = "",
) -> UserRow:
    address = normalise_email(email)
    check_role(role)
    password_hash = hash_password(password)

    if get_user_by_email(session, address) is not None:
        raise AlreadyExists(f"a user with the e-mail {address!r} already exists in this tenant")
    user = UserRow(
        id=uuid.uuid4(),
        email=address,
        display_name=display_name,
        role=role,
        password_hash=password_hash,
        status="active",
    )
    session.add(user)
    try:
        session.flush()
    except DatabaseIntegrityError as exc:
        raise AlreadyExists(
            f"a user with the e-mail {address!r} already exists in this tenant"
        ) from exc

    log.info("user_created", user_id=str(user.id), role=role)
    return user


def get_user_by_email(session: TenantSession, email: str) -> UserRow | None:
    return session.scalars(select(UserRow).where(UserRow.email == normalise_email(email))).first()


def access_user_by_email(session: TenantSession, email: str) -> UserRow:
    user = get_user_by_email(session, email)
    if user is None:
        raise NotFound(f"no user has the e-mail {email!r} in this tenant")
    return user


def get_user(session: TenantSession, user_id: uuid.UUID) -> UserRow | None:
    return session.scalars(select(UserRow).where(UserRow.id == user_id)).first()


def access_active_user(session: TenantSession, user_id: uuid.UUID) -> UserRow:
    """Return an active user of the tenant; a user who is not active is as unknown as a missing one."""
    user = get_user(session, user_id)
    if user is None or user.status != ACTIVE:
        raise NotFound(f"no active user has the id {user_id} in this tenant")
    return user


def list_users(session: TenantSession, active_only: bool = False) -> list[UserRow]:
    query = select(UserRow).order_by(UserRow.email)
    if active_only:
        query = query.where(UserRow.status == ACTIVE)
    return list(session.scalars(query))
