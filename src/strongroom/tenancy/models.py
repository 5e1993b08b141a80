"""Catalog tables: the platform's own rows, never a tenant's contents."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, LargeBinary, String
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
