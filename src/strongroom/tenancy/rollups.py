"""The hourly usage roll-up: storage byte-hours and active users per tenant and hour.

Every hour, five minutes after it closed (so that every server has flushed
its counts of it), the platform job `usage.schedule_roll_ups` enqueues one
`usage.roll_up` job per tenant and records the hour in `usage_rollups`. Hours
missed while no worker ran are caught up the next time, up to a week back.
The enqueued jobs are in the persistent queue and the scheduled hours in the
catalog, so a restart loses neither. A job that was running when its worker
was killed is lost from the queue, so hours of the last day that are still
not rolled up two hours later are enqueued again.

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
from strongroom.tenancy.models import (
    ActiveUserRow,
    MeterFlushRow,
    TenantRow,
    UsageHourRow,
    UsageRollupRow,
)
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
# A roll-up job lost with its worker (killed while the job ran) leaves its hours without
# `rolled_up_at`. Such hours of the last day are enqueued again once they are this old,
# which leaves a queue that runs behind time to catch up before they count as lost.
REPAIR_AFTER = dt.timedelta(hours=2)
REPAIR_WINDOW = dt.timedelta(days=1)


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
    """Enqueue the roll-up of every pending hour for every tenant, and return those hours.

    Each tenant's job also gets the hours whose roll-up was lost, and no hour
    that ended before the tenant was created.
    """
    now = now or dt.datetime.now(dt.UTC)
    hours = pending_hours(runtime.engine, now)
    tenants = tenants_with_store(runtime.engine)
    lost = unfinished_hours(runtime.engine, tenants, now)
    enqueued = 0
    for tenant_id, created_at in tenants.items():
        due = {hour for hour in hours if hour + HOUR > created_at} | set(lost.get(tenant_id, []))
        if due:
            stamps = [hour.isoformat() for hour in sorted(due)]
            runtime.jobs.enqueue(ROLL_UP, tenant_id, hours=stamps)
            enqueued += 1
    if hours:
        _record_scheduled(runtime.engine, hours, now)
    if enqueued:
        log.info(
            "usage_roll_ups_scheduled",
            hours=len(hours),
            lost_hours=sum(len(tenant_hours) for tenant_hours in lost.values()),
            tenants=enqueued,
        )
    return hours


def tenants_with_store(engine: Engine) -> dict[uuid.UUID, dt.datetime]:
    """Return when each tenant that has a store was created, by tenant id."""
    query = select(TenantRow.id, TenantRow.created_at).where(TenantRow.status.not_in(NO_STORE))
    with Session(engine) as session:
        return {tenant_id: _utc(created_at) for tenant_id, created_at in session.execute(query)}


def unfinished_hours(
    engine: Engine, tenants: dict[uuid.UUID, dt.datetime], now: dt.datetime
) -> dict[uuid.UUID, list[dt.datetime]]:
    """Return, by tenant, the hours scheduled in the last day whose roll-up never finished."""
    first = start_of_hour(now) - REPAIR_WINDOW
    last = start_of_hour(now) - REPAIR_AFTER
    with Session(engine) as session:
        scheduled = session.scalars(
            select(UsageRollupRow.hour).where(UsageRollupRow.hour.between(first, last))
        )
        hours = [_utc(hour) for hour in scheduled]
        finished = session.execute(
            select(UsageHourRow.tenant_id, UsageHourRow.hour).where(
                UsageHourRow.hour.between(first, last), UsageHourRow.rolled_up_at.is_not(None)
            )
        )
        done = {(tenant_id, _utc(hour)) for tenant_id, hour in finished}
    lost = {}
    for tenant_id, created_at in tenants.items():
        missing = [h for h in hours if (tenant_id, h) not in done and h + HOUR > created_at]
        if missing:
            lost[tenant_id] = missing
    return lost


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
