"""Storage usage and quotas, counted in plaintext bytes of every version, trash included.

Usage is one counter row per tenant in the tenant's store, changed only by
`reserve_bytes` and `release_bytes` in the same transaction as the rows that
account for the bytes. The reservation is a single conditional UPDATE, so two
concurrent uploads cannot both slip under the limit.
"""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, select, update
from sqlalchemy.orm import Mapped, mapped_column

from strongroom.base.errors import QuotaExceeded
from strongroom.storage.db import TenantBase, TenantScoped, TenantSession
from strongroom.tenancy.context import TenantInfo


class UsageRow(TenantScoped, TenantBase):
    __tablename__ = "storage_usage"

    bytes_used: Mapped[int] = mapped_column(BigInteger, default=0)


def get_usage(session: TenantSession) -> int:
    used = session.scalar(select(UsageRow.bytes_used))
    return used or 0


def quota_exceeded(tenant: TenantInfo, used: int, requested: int) -> QuotaExceeded:
    return QuotaExceeded(
        f"storing {requested} more bytes would exceed the storage quota of tenant "
        f"{tenant.slug!r}: {used} of {tenant.quota_bytes} bytes are used; delete files and "
        "empty the trash, or ask the operator for a larger quota",
        used=used,
        limit=tenant.quota_bytes,
        requested=requested,
    )


def check_room(session: TenantSession, tenant: TenantInfo, size: int) -> None:
    """Raise QuotaExceeded if `size` more bytes do not fit now; an early check, not a reservation."""
    if tenant.quota_bytes is None:
        return
    used = get_usage(session)
    if used + size > tenant.quota_bytes:
        raise quota_exceeded(tenant, used, size)


def reserve_bytes(session: TenantSession, tenant: TenantInfo, size: int) -> None:
    """Add `size` bytes to the tenant's usage, or raise QuotaExceeded and change nothing."""
    _ensure_row(session, tenant.id)
    statement = update(UsageRow).values(bytes_used=UsageRow.bytes_used + size)
    if tenant.quota_bytes is not None:
        statement = statement.where(UsageRow.bytes_used + size <= tenant.quota_bytes)
    if session.execute(statement).rowcount != 1:
        raise quota_exceeded(tenant, get_usage(session), size)


def release_bytes(session: TenantSession, size: int) -> None:
    session.execute(update(UsageRow).values(bytes_used=UsageRow.bytes_used - size))


def lock_tenant(session: TenantSession) -> None:
    """Hold the tenant's usage row until commit, so changes that must not interleave run in turn.

    SQLite writers already run one at a time; this matters on PostgreSQL.
    """
    _ensure_row(session, session.tenant_id)  # type: ignore[arg-type]
    session.execute(select(UsageRow.tenant_id).with_for_update()).first()


def set_usage(session: TenantSession, tenant_id: uuid.UUID, used: int) -> None:
    """Overwrite the counter, for `strongroom check --repair` after it recounted the rows."""
    _ensure_row(session, tenant_id)
    session.execute(update(UsageRow).values(bytes_used=used))


def _ensure_row(session: TenantSession, tenant_id: uuid.UUID) -> None:
    if session.scalar(select(UsageRow.tenant_id)) is None:
        session.add(UsageRow(tenant_id=tenant_id, bytes_used=0))
        session.flush()
