"""Tenant tables of identity: users, guest invitations, groups, API tokens, app passwords,
web sessions, second factors."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from strongroom.storage.db import TenantBase, TenantScoped
from strongroom.tenancy.models import utcnow

ADMIN = "admin"
MEMBER = "member"
# A guest is invited by e-mail, expires, has no drive and reaches only what is shared with them.
GUEST = "guest"
ROLES = (ADMIN, MEMBER, GUEST)


class UserRow(TenantScoped, TenantBase):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "email"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20), default="member")
    password_hash: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Set for guests only: after this moment the account can no longer log in or act.
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    invited_by: Mapped[uuid.UUID | None] = mapped_column()

    def is_usable(self, now: dt.datetime | None = None) -> bool:
        """Return True while the user may log in and act: active, and for a guest, not expired."""
        if self.status != "active":
            return False
        return self.expires_at is None or as_utc(self.expires_at) > (now or utcnow())

    @property
    def is_guest(self) -> bool:
        return self.role == GUEST


def as_utc(moment: dt.datetime) -> dt.datetime:
    """Return the moment with its UTC offset; SQLite returns naive datetimes, which are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


class GuestInvitationRow(TenantScoped, TenantBase):
    """An invitation e-mailed to a guest; only the SHA-256 of its secret is stored.

    The guest opens the link once, before `expires_at`, to choose a password;
    `used_at` is set then, and the link stops working.
    """

    __tablename__ = "guest_invitations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "token_hash"),
        ForeignKeyConstraint(
            ["tenant_id", "user_id"], ["users.tenant_id", "users.id"], ondelete="CASCADE"
        ),
        Index("ix_guest_invitations_user", "tenant_id", "user_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column()
    token_hash: Mapped[str] = mapped_column(String(64))
    invited_by: Mapped[uuid.UUID] = mapped_column()
    note: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class TokenRow(TenantScoped, TenantBase):
    """An API token; only the SHA-256 of the secret is stored."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        UniqueConstraint("tenant_id", "token_hash"),
        ForeignKeyConstraint(["tenant_id", "user_id"], ["users.tenant_id", "users.id"]),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(index=False)
    name: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class WebSessionRow(TenantScoped, TenantBase):
    """A browser session; only the SHA-256 of the cookie's secret is stored.

    A session that passed the password but still needs the second factor has
    `awaiting_second_factor` set and opens no page but the code prompt.
    """

    __tablename__ = "web_sessions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "token_hash"),
        ForeignKeyConstraint(["tenant_id", "user_id"], ["users.tenant_id", "users.id"]),
        Index("ix_web_sessions_user", "tenant_id", "user_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column()
    token_hash: Mapped[str] = mapped_column(String(64))
    awaiting_second_factor: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class SecondFactorRow(TenantScoped, TenantBase):
    """A user's TOTP secret, encrypted with a version of the tenant key.

    It counts only once `confirmed_at` is set, after the user typed a code
    from it. `last_used_step` is the TOTP time step of the last code accepted,
    so that a code cannot be used twice.
    """

    __tablename__ = "second_factors"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "user_id"], ["users.tenant_id", "users.id"]),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    wrapped_secret: Mapped[bytes] = mapped_column(LargeBinary)
    key_version: Mapped[int] = mapped_column(Integer)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_step: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RecoveryCodeRow(TenantScoped, TenantBase):
    """A one-time code that replaces the second factor for one login. Only its SHA-256 is stored."""

    __tablename__ = "recovery_codes"
    __table_args__ = (
        UniqueConstraint("tenant_id", "user_id", "code_hash"),
        ForeignKeyConstraint(["tenant_id", "user_id"], ["users.tenant_id", "users.id"]),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column()
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LoginRecordRow(TenantScoped, TenantBase):
    """When a user last logged in, and how many logins failed since then."""

    __tablename__ = "login_records"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "user_id"], ["users.tenant_id", "users.id"]),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    failures_since_login: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class AppPasswordRow(TenantScoped, TenantBase):
    """A password for WebDAV clients, made by the server; only the SHA-256 of the secret is stored."""

    __tablename__ = "app_passwords"
    __table_args__ = (
        UniqueConstraint("tenant_id", "password_hash"),
        ForeignKeyConstraint(["tenant_id", "user_id"], ["users.tenant_id", "users.id"]),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column()
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # When the audit trail last got a WebDAV sign-in with this app password.
    sign_in_recorded_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class GroupRow(TenantScoped, TenantBase):
    """A named set of users of the tenant, which files and folders can be shared with."""

    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[uuid.UUID | None] = mapped_column()


class GroupMemberRow(TenantScoped, TenantBase):
    """A user's membership of a group; deleting the group or the user deletes it."""

    __tablename__ = "group_members"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "group_id"], [GroupRow.tenant_id, GroupRow.id], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["tenant_id", "user_id"], [UserRow.tenant_id, UserRow.id], ondelete="CASCADE"
        ),
        Index("ix_group_members_user", "tenant_id", "user_id"),
    )

    group_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    added_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
