"""Tenant tables of webhooks: subscriptions and their deliveries."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from strongroom.identity.models import UserRow
from strongroom.storage.db import TenantBase, TenantScoped
from strongroom.tenancy.models import utcnow

# The events a webhook can subscribe to, in the order the API lists them.
FILE_CREATED = "file.created"
FILE_UPDATED = "file.updated"
FILE_DELETED = "file.deleted"
SHARE_CREATED = "share.created"
LINK_CREATED = "link.created"
EVENT_TYPES = (FILE_CREATED, FILE_UPDATED, FILE_DELETED, SHARE_CREATED, LINK_CREATED)

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"
DELIVERY_STATES = (PENDING, DELIVERED, DEAD)
MAX_URL_LENGTH = 2000
MAX_ERROR_LENGTH = 500


class WebhookRow(TenantScoped, TenantBase):
    """A subscription of a URL to event types.

    The signing secret is encrypted with a version of the tenant key, bound to
    the tenant and the webhook, because deliveries need it back to sign.
    """

    __tablename__ = "webhooks"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "created_by"], [UserRow.tenant_id, UserRow.id]),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    url: Mapped[str] = mapped_column(String(MAX_URL_LENGTH))
    event_types: Mapped[list[str]] = mapped_column(JSON)
    wrapped_secret: Mapped[bytes] = mapped_column(LargeBinary)
    key_version: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[uuid.UUID] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    modified_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DeliveryRow(TenantScoped, TenantBase):
    """One event sent to one webhook: `pending` until a 2xx response, or `dead` after the last try.

    `attempts` counts the tries since the delivery was made or last replayed.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "webhook_id"], [WebhookRow.tenant_id, WebhookRow.id], ondelete="CASCADE"
        ),
        Index("ix_webhook_deliveries_webhook", "tenant_id", "webhook_id", "state", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    webhook_id: Mapped[uuid.UUID] = mapped_column()
    event_id: Mapped[uuid.UUID] = mapped_column()
    event_type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(10), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(MAX_ERROR_LENGTH))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
