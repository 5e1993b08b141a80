"""Users of a tenant: the same e-mail address in two tenants is two unrelated users."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError as DatabaseIntegrityError

from strongroom.base.errors import (
    AlreadyExists,
    BeyondPlan,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
)
from strongroom.base.logging import get_logger
from strongroom.identity.models import GUEST, ROLES, UserRow
from strongroom.identity.passwords import hash_password
from strongroom.identity.web_sessions import end_user_sessions
from strongroom.storage.db import TenantSession
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.models import utcnow
from strongroom.tenancy.settings import check_password
from strongroom.tenancy.usage import lock_tenant

log = get_logger(__name__)

ACTIVE = "active"

# A pragmatic check, not RFC 5322: one @, no spaces, a dot in the domain.
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
USER_STATUSES = ("active", "disabled")
# Roles an admin can give; guests get theirs only through an invitation (identity/guests.py).
ASSIGNABLE_ROLES = tuple(role for role in ROLES if role != GUEST)


def normalise_email(email: str) -> str:
    address = email.strip().lower()
    if len(address) > 320 or not EMAIL_PATTERN.fullmatch(address):
        raise InvalidInput(f"{email!r} is not an e-mail address; use the form name@example.org")
    return address


def check_role(role: str) -> str:
    if role == GUEST:
        raise InvalidInput(
            "the guest role comes only with an invitation; invite guests with POST /api/v1/guests"
        )
    if role not in ASSIGNABLE_ROLES:
        raise InvalidInput(
            f"role {role!r} does not exist; use one of: {', '.join(ASSIGNABLE_ROLES)}"
        )
    return role


def create_user(
    session: TenantSession,
    email: str,
    password: str,
    role: str = "member",
    display_name: str = "",
    *,
    tenant: TenantInfo | None = None,
) -> UserRow:
    """Create a user; with `tenant`, within its plan's user limit and its password policy.

    Every interface passes the tenant. Only set-up code, such as test
    fixtures, creates users without these checks.
    """
    address = normalise_email(email)
    check_role(role)
    if tenant is not None:
        check_password(tenant.settings.password_policy, password)
    password_hash = hash_password(password)
    if tenant is not None and tenant.limits.max_users is not None:
        check_room_for_user(session, tenant)

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


def check_room_for_user(session: TenantSession, tenant: TenantInfo) -> None:
    """Raise BeyondPlan when the tenant has as many users as its plan allows.

    The tenant's usage row stays locked until commit, so two concurrent
    creations cannot both take the last place.
    """
    limit = tenant.limits.max_users
    if limit is None:
        return
    lock_tenant(session)
    users = session.scalar(select(func.count()).select_from(UserRow)) or 0
    if users >= limit:
        raise BeyondPlan(
            f"tenant {tenant.slug!r} has {users} users, the most its plan {tenant.plan!r} "
            "allows; remove a user, or ask the operator for a larger plan",
            limit=limit,
        )


def get_user_by_email(session: TenantSession, email: str) -> UserRow | None:
    return session.scalars(select(UserRow).where(UserRow.email == normalise_email(email))).first()


def access_user_by_email(session: TenantSession, email: str) -> UserRow:
    user = get_user_by_email(session, email)
    if user is None:
        raise NotFound(f"no user has the e-mail {email!r} in this tenant")
    return user


def get_user(session: TenantSession, user_id: uuid.UUID) -> UserRow | None:
    return session.scalars(select(UserRow).where(UserRow.id == user_id)).first()


def access_user(session: TenantSession, user_id: uuid.UUID) -> UserRow:
    user = get_user(session, user_id)
    if user is None:
        raise NotFound(f"no user has the id {user_id} in this tenant")
    return user


def _check_not_self(user: UserRow, actor_id: uuid.UUID | None, change: str) -> None:
    # An admin who demoted or disabled themselves could lock the tenant out of its admin pages.
    if actor_id is not None and user.id == actor_id:
        raise Forbidden(f"you cannot change your own {change}; ask another admin of the tenant")


def _check_other_admin_remains(session: TenantSession, user: UserRow) -> None:
    if user.role != "admin" or user.status != "active":
        return
    admins = session.scalars(
        select(UserRow.id).where(UserRow.role == "admin", UserRow.status == "active")
    )
    if len(list(admins)) <= 1:
        raise Conflict(f"{user.email!r} is the last active admin; make another user admin first")


def change_role(
    session: TenantSession, user_id: uuid.UUID, role: str, actor_id: uuid.UUID | None
) -> UserRow:
    check_role(role)
    user = access_user(session, user_id)
    _check_not_self(user, actor_id, "role")
    if user.role == GUEST:
        raise Conflict(
            f"{user.email!r} is a guest, whose role cannot change; end the guest with "
            "DELETE /api/v1/guests/{id} and create a member account instead"
        )
    if role != "admin":
        _check_other_admin_remains(session, user)
    old_role, user.role = user.role, role
    session.flush()
    log.info("user_role_changed", user_id=str(user.id), old=old_role, new=role)
    return user


def set_user_status(
    session: TenantSession, user_id: uuid.UUID, status: str, actor_id: uuid.UUID | None
) -> UserRow:
    """Enable or disable a user; disabling ends the user's web sessions at once.

    The user's API tokens fail from then on, once the token caches of the
    replicas have expired.
    """
    if status not in USER_STATUSES:
        raise InvalidInput(f"status {status!r} does not exist; use one of: {', '.join(USER_STATUSES)}")
    user = access_user(session, user_id)
    _check_not_self(user, actor_id, "status")
    if status != "active":
        _check_other_admin_remains(session, user)
        end_user_sessions(session, user.id)
    old_status, user.status = user.status, status
    session.flush()
    log.info("user_status_changed", user_id=str(user.id), old=old_status, new=status)
    return user


def access_active_user(session: TenantSession, user_id: uuid.UUID) -> UserRow:
    """Return an active user of the tenant; a user who is not active, or a guest who expired,
    is as unknown as a missing one."""
    user = get_user(session, user_id)
    if user is None or not user.is_usable():
        raise NotFound(f"no active user has the id {user_id} in this tenant")
    return user


def list_users(
    session: TenantSession, active_only: bool = False, with_guests: bool = True
) -> list[UserRow]:
    query = select(UserRow).order_by(UserRow.email)
    if active_only:
        query = query.where(UserRow.status == ACTIVE)
    if not with_guests:
        query = query.where(UserRow.role != GUEST)
    users = list(session.scalars(query))
    if active_only:
        now = utcnow()
        users = [user for user in users if user.is_usable(now)]
    return users
