"""The tenant table of exports: one row per export an admin requested."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKeyConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from strongroom.identity.models import UserRow
from strongroom.storage.db import TenantBase, TenantScoped
from strongroom.tenancy.models import utcnow

QUEUED = "queued"
RUNNING = "running"
READY = "ready"
FAILED = "failed"
STATUSES = (QUEUED, RUNNING, READY, FAILED)
# Never stored: the status that reads show for a finished export past its `expires_at`,
# whose row waits for the hourly sweep.
EXPIRED = "expired"
MAX_KIND_LENGTH = 32
MAX_REASON_LENGTH = 500


class ExportRow(TenantScoped, TenantBase):
    """An export and the state of its job.

    A ready export's content is the blob whose id is the export's id, in the
    drive's `blobs` table, so that key rotation and `strongroom check` cover
    it like any file content. `attempts` counts the job's runs that claimed
    the export.
    """

    __tablename__ = "exports"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "requested_by"], [UserRow.tenant_id, UserRow.id]),
        Index("ix_exports_created", "tenant_id", "created_at"),
        Index("ix_exports_status", "tenant_id", "status", "expires_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(MAX_KIND_LENGTH))
    format: Mapped[str] = mapped_column(String(8))
    filters: Mapped[dict[str, Any]] = mapped_column(JSON)
    requested_by: Mapped[uuid.UUID] = mapped_column()
    status: Mapped[str] = mapped_column(String(10), default=QUEUED)
    reason: Mapped[str | None] = mapped_column(String(MAX_REASON_LENGTH))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    def status_at(self, now: dt.datetime) -> str:
        """Return the status to show at `now`: the stored one, or `expired` once it expired."""
        if self.expires_at is not None and as_utc(self.expires_at) <= now:
            return EXPIRED
        return self.status


def as_utc(moment: dt.datetime) -> dt.datetime:
    """Return `moment` with its time zone: SQLite returns naive datetimes, which are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
