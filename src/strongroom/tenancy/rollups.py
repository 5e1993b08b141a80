"""The hourly usage roll-up: storage byte-hours and active users per tenant and hour.

Every hour, five minutes after it closed (so that every server has flushed
its counts of it), the platform job `usage.schedule_roll_ups` enqueues one
`usage.roll_up` job per tenant and records the hour in `usage_rollups`. Hours
missed while no worker ran are caught up the next time, up to a week back.
The enqueued jobs are in the persistent queue and the scheduled hours in the
catalog, so a restart loses neither.

A roll-up samples the tenant's stored bytes once. For each of its hours it
sets the sample, unless the hour has one already so that the sample nearest
the hour wins. It also sets that sample times one hour as the hour's
byte-hours, and the count of distinct users seen in the hour. It sets
figures rather than adding them, so running it twice counts nothing twice.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING

from huey import crontab
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from strongroom.base.logging import get_logger
from strongroom.storage.db import writer_bind
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.jobs import NO_STORE, Job
from strongroom.tenancy.metering import conflict_insert, start_of_hour
from strongroom.tenancy.models import ActiveUserRow, MeterFlushRow, UsageHourRow, UsageRollupRow
from strongroom.tenancy.usage import get_usage

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from strongroom.runtime import Runtime

log = get_logger(__name__)

HOUR = dt.timedelta(hours=1)
# Servers flush every minute by default, so an hour is rolled up this long after it closed.
SETTLE = dt.timedelta(minutes=5)
MAX_CATCH_UP_HOURS = 7 * 24
# Flush ids only need to outlive the retries of their batch.
FLUSH_ID_RETENTION = dt.timedelta(days=30)


def pending_hours(engine: Engine, now: dt.datetime) -> list[dt.datetime]:
    """Return the closed hours not yet scheduled, oldest first, at most MAX_CATCH_UP_HOURS.

    On the first run ever, that is only the last closed hour.
    """
    last_closed = start_of_hour(now - SETTLE) - HOUR
    with Session(engine) as session:
        latest = session.scalar(select(func.max(UsageRollupRow.hour)))
    first = last_closed if latest is None else start_of_hour(_utc(latest)) + HOUR
    first = max(first, last_closed - (MAX_CATCH_UP_HOURS - 1) * HOUR)
    hours = []
    while first <= last_closed:
        hours.append(first)
        first += HOUR
    return hours


def schedule_roll_ups(runtime: Runtime, now: dt.datetime | None = None) -> list[dt.datetime]:
    """Enqueue the roll-up of every pending hour for every tenant, and return the hours."""
    now = now or dt.datetime.now(dt.UTC)
    hours = pending_hours(runtime.engine, now)
    if not hours:
        return []
    tenants = [t for t in runtime.catalog.list_tenants() if t.status not in NO_STORE]
    stamps = [hour.isoformat() for hour in hours]
    for tenant in tenants:
        runtime.jobs.enqueue(ROLL_UP, tenant.id, hours=stamps)
    _record_scheduled(runtime.engine, hours, now)
    log.info("usage_roll_ups_scheduled", first=stamps[0], hours=len(hours), tenants=len(tenants))
    return hours


def roll_up_tenant(runtime: Runtime, tenant: TenantInfo, hours: list[str]) -> None:
    """Set storage and active users of the tenant's hours, given as ISO 8601 strings."""
    with runtime.stores.session(tenant) as session:
        stored = get_usage(session)
    for stamp in hours:
        hour = start_of_hour(dt.datetime.fromisoformat(stamp))
        roll_up_hour(runtime.engine, tenant.id, hour, stored)
    log.info("usage_rolled_up", hours=len(hours), storage_bytes=stored)


def roll_up_hour(engine: Engine, tenant_id: uuid.UUID, hour: dt.datetime, stored: int) -> None:
    """Set one hour's storage sample (unless it has one), byte-hours and active users."""
    with Session(writer_bind(engine)) as session, session.begin():
        users = session.scalar(
            select(func.count())
            .select_from(ActiveUserRow)
            .where(ActiveUserRow.tenant_id == tenant_id, ActiveUserRow.hour == hour)
        )
        statement = conflict_insert(session.get_bind().dialect.name, UsageHourRow).values(
            tenant_id=tenant_id,
            hour=hour,
            requests=0,
            bytes_in=0,
            bytes_out=0,
            storage_bytes=stored,
            storage_byte_hours=stored,
            active_users=users or 0,
            rolled_up_at=dt.datetime.now(dt.UTC),
        )
        # In ON CONFLICT DO UPDATE, the table's columns are the values before this update.
        sample = func.coalesce(UsageHourRow.storage_bytes, statement.excluded.storage_bytes)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=[UsageHourRow.tenant_id, UsageHourRow.hour],
                set_={
                    "storage_bytes": sample,
                    "storage_byte_hours": sample,
                    "active_users": statement.excluded.active_users,
                    "rolled_up_at": statement.excluded.rolled_up_at,
                },
            )
        )


def _record_scheduled(engine: Engine, hours: list[dt.datetime], now: dt.datetime) -> None:
    with Session(writer_bind(engine)) as session, session.begin():
        dialect = session.get_bind().dialect.name
        rows = [{"hour": hour, "scheduled_at": now} for hour in hours]
        session.execute(conflict_insert(dialect, UsageRollupRow).values(rows).on_conflict_do_nothing())
        session.execute(delete(MeterFlushRow).where(MeterFlushRow.flushed_at < now - FLUSH_ID_RETENTION))


def _utc(moment: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes for timezone-aware columns; they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


ROLL_UP = Job("usage.roll_up", roll_up_tenant, retries=5, retry_delay=300)
SCHEDULE_ROLL_UPS = Job(
    "usage.schedule_roll_ups",
    schedule_roll_ups,
    per_tenant=False,
    schedule=crontab(minute="5"),
)
JOBS = (ROLL_UP, SCHEDULE_ROLL_UPS)
