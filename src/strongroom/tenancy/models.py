"""Catalog tables: the platform's own rows, never a tenant's contents."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from strongroom.storage.db import CatalogBase


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class TenantRow(CatalogBase):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="active")
    isolation: Mapped[str] = mapped_column(String(20), default="shared")
    server: Mapped[str] = mapped_column(String(63), default="default")
    placement: Mapped[str] = mapped_column(String(200), default="")
    store_revision: Mapped[str | None] = mapped_column(String(32))
    # No foreign key, because the tests empty every table between tests, the seeded
    # default plan included. Changing a tenant's plan and deleting a plan lock the
    # plan's row instead (tenancy/plans.py), and a missing default plan is unlimited.
    plan: Mapped[str] = mapped_column(String(63), default="default")
    # Limits that differ from the plan's, by TenantLimits field name; null is unlimited.
    limit_overrides: Mapped[dict] = mapped_column(JSON, default=dict)
    # The tenant administrator's module choices, by module name: true on, false off.
    modules: Mapped[dict] = mapped_column(JSON, default=dict)
    # The settings the tenant administrator chose; the rest come from the plan.
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    # Loaded in the same query as the tenant, so resolving a tenant stays one round trip.
    plan_row: Mapped[PlanRow | None] = relationship(
        primaryjoin="foreign(TenantRow.plan) == PlanRow.name", lazy="joined", viewonly=True
    )


class PlanRow(CatalogBase):
    """A bundle of limits, allowed modules and default settings that tenants subscribe to."""

    __tablename__ = "plans"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    storage_bytes: Mapped[int | None] = mapped_column(BigInteger)
    max_users: Mapped[int | None] = mapped_column(Integer)
    max_file_size: Mapped[int | None] = mapped_column(BigInteger)
    requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    user_requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    bandwidth_bytes_per_second: Mapped[int | None] = mapped_column(BigInteger)
    concurrent_transfers: Mapped[int | None] = mapped_column(Integer)
    # Names of the modules the plan allows.
    modules: Mapped[list] = mapped_column(JSON, default=list)
    # Default tenant settings, by setting name.
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class TenantKeyRow(CatalogBase):
    """One version of a tenant's key, wrapped by the master key."""

    __tablename__ = "tenant_keys"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DatabaseServerRow(CatalogBase):
    """A PostgreSQL server that can hold tenant schemas and databases besides the default one.

    The URL may hold a password, so it is never logged or printed in full.
    """

    __tablename__ = "database_servers"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# Metering ------------------------------------------------------------------------------
# Catalog rows, not tenant rows: they count a tenant's use for the operator's billing and
# contain no content. They have no foreign key to `tenants`, so that a server can always
# write the counts it holds, and because tenant rows are never deleted while billing needs them.


class UsageHourRow(CatalogBase):
    """A tenant's metered use in one UTC hour, the unit that monthly usage adds up.

    Servers add `requests`, `bytes_in` and `bytes_out` as they flush their
    counters. The roll-up job sets the other figures: the stored bytes it
    sampled, that sample times one hour, and the distinct users seen.
    """

    __tablename__ = "usage_hours"
    __table_args__ = (Index("ix_usage_hours_hour", "hour"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # The start of the hour, in UTC.
    hour: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_in: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_out: Mapped[int] = mapped_column(BigInteger, default=0)
    storage_bytes: Mapped[int | None] = mapped_column(BigInteger)
    storage_byte_hours: Mapped[int] = mapped_column(BigInteger, default=0)
    active_users: Mapped[int] = mapped_column(Integer, default=0)
    rolled_up_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ActiveUserRow(CatalogBase):
    """A user who made an authenticated request to the tenant in that UTC hour."""

    __tablename__ = "usage_active_users"
    __table_args__ = (Index("ix_usage_active_users_hour", "hour"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    hour: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


class MeterFlushRow(CatalogBase):
    """A batch of counts that a server wrote, so that a retry of the same batch adds nothing."""

    __tablename__ = "meter_flushes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    flushed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UsageRollupRow(CatalogBase):
    """A closed hour whose roll-up was enqueued for every tenant."""

    __tablename__ = "usage_rollups"

    hour: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    scheduled_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OperatorTokenRow(CatalogBase):
    """A bearer token of the operator API; only the SHA-256 of the secret is stored."""

    __tablename__ = "operator_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
