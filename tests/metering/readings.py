"""Reading the metering tables back, and a clock that tests move by hand."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from strongroom.tenancy.models import ActiveUserRow, UsageHourRow

# 2026-11-05 10:20 UTC: an hour in the middle of a month.
START = dt.datetime(2026, 11, 5, 10, 20, tzinfo=dt.UTC)


@dataclass
class Clock:
    """Seconds since the Unix epoch, at START until a test moves it."""

    now: dt.datetime = START

    def __call__(self) -> float:
        return self.now.timestamp()

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


def utc(moment: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes for timezone-aware columns; they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def hour_rows(engine: Engine, tenant_id: uuid.UUID) -> dict[dt.datetime, UsageHourRow]:
    """Return the tenant's hourly rows by the start of their hour."""
    with Session(engine, expire_on_commit=False) as session:
        rows = session.scalars(select(UsageHourRow).where(UsageHourRow.tenant_id == tenant_id))
        return {utc(row.hour): row for row in rows}


def only_row(engine: Engine, tenant_id: uuid.UUID) -> UsageHourRow:
    rows = hour_rows(engine, tenant_id)
    assert len(rows) == 1, f"expected one hourly row, found {sorted(rows)}"
    return next(iter(rows.values()))


def active_user_rows(engine: Engine, tenant_id: uuid.UUID) -> int:
    with Session(engine) as session:
        return session.scalar(
            select(func.count()).select_from(ActiveUserRow).where(ActiveUserRow.tenant_id == tenant_id)
        ) or 0
