"""The write fence of a tenant's store: one row that records whether the store takes writes.

Moving a tenant to another store must stop its writes for the last copy, on
every replica at once, including writes that started before the move did.
The catalog cannot do that: replicas cache it, and it may live in another
database than the tenant's rows. So the fence lives in the store itself.
Every write transaction reads the row first, with `FOR SHARE` on PostgreSQL,
and the mover closes the fence with an UPDATE. That UPDATE waits for every
write transaction that read the row, and every write that starts after it
finds the fence closed. On SQLite, write transactions run one at a time from
their start (`BEGIN IMMEDIATE`), which gives the same order.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, DateTime, select, update
from sqlalchemy.orm import Mapped, mapped_column

from strongroom.base.errors import ServiceUnavailable
from strongroom.storage.db import TenantBase, TenantScoped, TenantSession
from strongroom.tenancy.models import utcnow

# Seconds a client should wait before retrying a write the fence rejected.
RETRY_AFTER_SECONDS = 5


class StoreStateRow(TenantScoped, TenantBase):
    __tablename__ = "store_state"

    accepts_writes: Mapped[bool] = mapped_column(Boolean, default=True)
    changed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def open_store(session: TenantSession) -> None:
    """Write a new store's fence row, open; a store initializer."""
    session.add(StoreStateRow(accepts_writes=True))


def check_writable(session: TenantSession, slug: str) -> None:
    """Raise ServiceUnavailable when the store's fence is closed.

    A store without the row takes writes: stores made before the fence
    existed get the row from their migration, and a move adds it first.
    """
    query = select(StoreStateRow.accepts_writes)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    accepts = session.scalar(query)
    if accepts is False:
        error = ServiceUnavailable(
            f"tenant {slug!r} is being moved to another store and takes no changes for a "
            f"moment; reading goes on, and writing resumes within seconds, so retry in "
            f"{RETRY_AFTER_SECONDS} seconds"
        )
        error.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        raise error


def set_writable(session: TenantSession, accepts_writes: bool) -> None:
    """Open or close the fence; closing waits for the write transactions under way."""
    changed = session.execute(
        update(StoreStateRow).values(accepts_writes=accepts_writes, changed_at=utcnow())
    )
    if changed.rowcount == 0:
        session.add(StoreStateRow(accepts_writes=accepts_writes))
        session.flush()
