"""Audit events: the one hook that every change a tenant's administrators may audit goes through.

Each event is a row of the tenant's `audit_events` table, which the tenant's
admins read and filter, and a structured log line with `audit=true` for the
operator. A row names the time (UTC), the actor, the action, the target, the
client address, and the old and new values. Rows are only ever added: no code
updates or deletes one, except removing a whole tenant store when the tenant
is deleted or moved, and the retention job (`tenancy.audit_retention`). On
PostgreSQL the tenant role has no UPDATE or DELETE on the table, and those
three paths switch to the audit purge role to delete.

A change to the tenant's own store records its event in the same transaction
(`add_event`). A change to the catalog, which may live in another database,
records its event right after the catalog transaction commits
(`record_event`), as do events that change nothing (a failed login, a
download through a public link).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, DateTime, Index, String
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from strongroom.base.errors import ServiceUnavailable
from strongroom.base.logging import get_logger
from strongroom.storage.db import TenantBase, TenantScoped, TenantSession
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.models import utcnow

if TYPE_CHECKING:
    from strongroom.tenancy.isolation import TenantStores

log = get_logger(__name__)

# The actor name of changes made with the `strongroom` command, which only the operator can run.
OPERATOR_NAME = "operator"
# The actor name of visitors of public links and upload requests, who have no account.
ANONYMOUS_NAME = "anonymous"

MAX_ACTION_LENGTH = 64
MAX_ACTOR_LENGTH = 64

# Every action the trail records, so that a filter can name only real ones.
ACTIONS = (
    "login",
    "login_failed",
    "logout",
    "dav_login",
    "dav_login_failed",
    "token_created",
    "token_revoked",
    "app_password_created",
    "app_password_revoked",
    "user_created",
    "user_role_changed",
    "user_status_changed",
    "second_factor_reset",
    "settings_changed",
    "modules_changed",
    "limits_changed",
    "plan_changed",
    "branding_changed",
    "group_created",
    "group_renamed",
    "group_deleted",
    "group_member_added",
    "group_member_removed",
    "share_created",
    "share_changed",
    "share_deleted",
    "link_created",
    "link_revoked",
    "link_downloaded",
    "upload_request_created",
    "upload_request_revoked",
    "upload_request_file_received",
    "webhook_created",
    "webhook_changed",
    "webhook_deleted",
    "webhook_delivery_replayed",
    "webhook_secret_rotated",
    "export_requested",
    "export_downloaded",
    "export_deleted",
    "guest_invited",
    "guest_invitation_accepted",
    "guest_ended",
)


class AuditEventRow(TenantScoped, TenantBase):
    """One entry of a tenant's audit trail; never changed after it is written."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_time", "tenant_id", "occurred_at", "id"),
        Index("ix_audit_events_action", "tenant_id", "action", "occurred_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # A user id of the tenant, "operator" or "anonymous".
    actor: Mapped[str] = mapped_column(String(MAX_ACTOR_LENGTH))
    action: Mapped[str] = mapped_column(String(MAX_ACTION_LENGTH))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    # The client's IP address as the server saw it; None for the command line.
    address: Mapped[str | None] = mapped_column(String(64))
    old: Mapped[dict | None] = mapped_column(JSON)
    new: Mapped[dict | None] = mapped_column(JSON)


@dataclass(frozen=True)
class Actor:
    """The user, operator or anonymous visitor who acts, with the client address of the request."""

    name: str
    address: str | None = None

    def log_name(self, tenant: TenantInfo) -> str:
        """Return the actor as log lines name it: `user id@tenant slug` for a user."""
        if self.name in (OPERATOR_NAME, ANONYMOUS_NAME):
            return self.name
        return f"{self.name}@{tenant.slug}"


OPERATOR = Actor(OPERATOR_NAME)


def user_actor(user_id: uuid.UUID, address: str | None = None) -> Actor:
    return Actor(str(user_id), address)


def anonymous_actor(address: str | None) -> Actor:
    return Actor(ANONYMOUS_NAME, address)


@dataclass(frozen=True)
class Target:
    """The object an event is about: a type such as `user` or `link`, and its id."""

    type: str
    id: uuid.UUID | str


def add_event(
    session: TenantSession,
    tenant: TenantInfo,
    action: str,
    actor: Actor,
    *,
    target: Target | None = None,
    old: Mapping[str, Any] | None = None,
    new: Mapping[str, Any] | None = None,
) -> AuditEventRow:
    """Add an audit event to the tenant's open write transaction, so it commits with the change.

    `action` names what happened, such as `share_created`. Values must be
    JSON-serialisable and must never hold a secret, a password or a token.
    They must hold no file name or e-mail address either, because the log
    line repeats them and log lines are read by operators.
    """
    if action not in ACTIONS:
        raise ValueError(f"{action!r} is not an audit action; add it to ACTIONS first")
    row = AuditEventRow(
        tenant_id=tenant.id,
        occurred_at=utcnow(),
        actor=actor.name,
        action=action,
        target_type=target.type if target is not None else None,
        target_id=str(target.id) if target is not None else None,
        address=actor.address,
        old=dict(old) if old is not None else None,
        new=dict(new) if new is not None else None,
    )
    session.add(row)
    _log_event(tenant, row, actor)
    return row


def record_event(
    stores: TenantStores,
    tenant: TenantInfo,
    action: str,
    actor: Actor,
    *,
    target: Target | None = None,
    old: Mapping[str, Any] | None = None,
    new: Mapping[str, Any] | None = None,
) -> None:
    """Write an audit event in a transaction of its own, for a change made outside the store.

    The change it records has happened already, so a failure to write the
    row is logged as an error with the event's fields, and not raised.
    """
    try:
        with stores.session(tenant, write=True) as session:
            add_event(session, tenant, action, actor, target=target, old=old, new=new)
    except (ServiceUnavailable, SQLAlchemyError) as exc:
        # NOTE: a move closes the store's write fence for a few seconds. An event of that
        # moment is lost from the trail, and this log line is its only record.
        log.error(
            "audit_event_not_stored",
            audit=True,
            tenant=tenant.slug,
            action=action,
            actor=actor.log_name(tenant),
            target_type=target.type if target is not None else None,
            target_id=str(target.id) if target is not None else None,
            old=dict(old) if old is not None else None,
            new=dict(new) if new is not None else None,
            error=type(exc).__name__,
        )


def _log_event(tenant: TenantInfo, row: AuditEventRow, actor: Actor) -> None:
    log.info(
        row.action,
        audit=True,
        tenant=tenant.slug,
        tenant_id=str(tenant.id),
        actor=actor.log_name(tenant),
        target_type=row.target_type,
        target_id=row.target_id,
        old=row.old,
        new=row.new,
    )
