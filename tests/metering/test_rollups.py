"""The hourly roll-up: storage byte-hours and active users, counted once however often it runs."""

from __future__ import annotations

import datetime as dt

import pytest
from huey.signals import SIGNAL_COMPLETE
from sqlalchemy import select
from sqlalchemy.orm import Session

from strongroom.base.config import Settings
from strongroom.runtime import Runtime, build_runtime
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.metering import Meter, start_of_hour
from strongroom.tenancy.models import UsageRollupRow
from strongroom.tenancy.rollups import (
    MAX_CATCH_UP_HOURS,
    ROLL_UP,
    pending_hours,
    roll_up_hour,
    roll_up_tenant,
    schedule_roll_ups,
)
from strongroom.tenancy.usage import reserve_bytes
from tests.conftest import Cast
from tests.metering.conftest import JobWatcher, run_consumer
from tests.metering.readings import Clock, hour_rows, only_row, utc

HOUR = dt.datetime(2026, 11, 5, 10, tzinfo=dt.UTC)
STORED = 123_456


def store_bytes(runtime: Runtime, cast: Cast, size: int = STORED) -> None:
    """Count `size` stored bytes in acme's usage, as an upload would."""
    with runtime.stores.session(cast.acme, write=True) as session:
        reserve_bytes(session, cast.acme, size)


def meter_hour(runtime: Runtime, cast: Cast) -> None:
    """Flush three requests and one active user of acme in HOUR."""
    meter = Meter(runtime.engine, clock=Clock())
    for _ in range(3):
        meter.record_request(cast.acme, 200)
    meter.record_user(cast.acme, cast.acme_member.user_id)
    meter.flush()


def scheduled_hours(runtime: Runtime) -> list[dt.datetime]:
    with Session(runtime.engine) as session:
        hours = session.scalars(select(UsageRollupRow.hour).order_by(UsageRollupRow.hour))
        return [utc(hour) for hour in hours]


def test_roll_up_twice_counts_once(runtime: Runtime, cast: Cast, jobs: JobWatcher) -> None:
    store_bytes(runtime, cast)
    meter_hour(runtime, cast)

    first = runtime.jobs.enqueue(ROLL_UP, cast.acme.id, hours=[HOUR.isoformat()])
    second = runtime.jobs.enqueue(ROLL_UP, cast.acme.id, hours=[HOUR.isoformat()])

    assert jobs.wait(first) == SIGNAL_COMPLETE
    assert jobs.wait(second) == SIGNAL_COMPLETE
    row = only_row(runtime.engine, cast.acme.id)
    assert row.storage_bytes == STORED
    assert row.storage_byte_hours == STORED
    assert row.active_users == 1
    assert row.requests == 3


def test_roll_up_keeps_first_storage_sample(runtime: Runtime, cast: Cast) -> None:
    roll_up_hour(runtime.engine, cast.acme.id, HOUR, 100)

    roll_up_hour(runtime.engine, cast.acme.id, HOUR, 900)

    row = only_row(runtime.engine, cast.acme.id)
    assert row.storage_bytes == 100
    assert row.storage_byte_hours == 100


def test_roll_up_counts_users_flushed_late(runtime: Runtime, cast: Cast) -> None:
    meter_hour(runtime, cast)
    roll_up_hour(runtime.engine, cast.acme.id, HOUR, 0)
    late = Meter(runtime.engine, clock=Clock())
    late.record_user(cast.acme, cast.acme_admin.user_id)
    late.flush()

    roll_up_hour(runtime.engine, cast.acme.id, HOUR, 0)

    assert only_row(runtime.engine, cast.acme.id).active_users == 2


def test_roll_up_keeps_other_tenant_apart(runtime: Runtime, cast: Cast) -> None:
    store_bytes(runtime, cast)
    meter_hour(runtime, cast)

    roll_up_tenant(runtime, cast.globex, [HOUR.isoformat()])

    globex = only_row(runtime.engine, cast.globex.id)
    assert globex.storage_bytes == 0
    assert globex.active_users == 0
    assert only_row(runtime.engine, cast.acme.id).storage_bytes is None


@pytest.mark.every_level
def test_roll_up_samples_storage_of_store(runtime: Runtime, cast: Cast, isolation: str) -> None:
    store_bytes(runtime, cast, 4096)
    hours = [HOUR, HOUR + dt.timedelta(hours=1)]

    roll_up_tenant(runtime, cast.acme, [hour.isoformat() for hour in hours])

    rows = hour_rows(runtime.engine, cast.acme.id)
    assert {hour: row.storage_byte_hours for hour, row in rows.items()} == {
        hours[0]: 4096,
        hours[1]: 4096,
    }


# Scheduling -----------------------------------------------------------------------------
# The schedule leaves out hours that ended before a tenant was created, so these tests
# schedule hours after the test's tenants were made.

LATER = start_of_hour(dt.datetime.now(dt.UTC)) + dt.timedelta(hours=2)


def at(hours: int, minutes: int = 5) -> dt.datetime:
    """Return a moment `hours` and `minutes` after the hour LATER."""
    return LATER + dt.timedelta(hours=hours, minutes=minutes)


def queued_hours(runtime: Runtime, tenant: TenantInfo) -> list[list[dt.datetime]]:
    """Return the hours of each roll-up queued for the tenant."""
    return [
        [dt.datetime.fromisoformat(stamp) for stamp in task.kwargs["hours"]]
        for task in runtime.jobs.huey.pending()
        if task.kwargs["tenant_id"] == str(tenant.id)
    ]


def test_pending_hours_first_run_is_last_closed_hour(runtime: Runtime) -> None:
    assert pending_hours(runtime.engine, at(1)) == [LATER]


def test_pending_hours_wait_for_flushes(runtime: Runtime) -> None:
    """Just after the hour turns, servers may still hold counts of it."""
    assert pending_hours(runtime.engine, at(1, minutes=2)) == [LATER - dt.timedelta(hours=1)]


def test_schedule_roll_ups_once_per_hour(runtime: Runtime, cast: Cast) -> None:
    first = schedule_roll_ups(runtime, at(1))
    again = schedule_roll_ups(runtime, at(1))

    assert first == [LATER]
    assert again == []
    assert queued_hours(runtime, cast.acme) == [[LATER]]
    assert queued_hours(runtime, cast.globex) == [[LATER]]


def test_schedule_roll_ups_catches_up_missed_hours(runtime: Runtime, cast: Cast) -> None:
    schedule_roll_ups(runtime, at(1))

    caught_up = schedule_roll_ups(runtime, at(4))

    assert caught_up == [at(n, minutes=0) for n in (1, 2, 3)]
    assert scheduled_hours(runtime) == [at(n, minutes=0) for n in range(4)]


def test_schedule_roll_ups_catch_up_is_bounded(runtime: Runtime, cast: Cast) -> None:
    schedule_roll_ups(runtime, at(1))

    caught_up = schedule_roll_ups(runtime, at(30 * 24))

    assert len(caught_up) == MAX_CATCH_UP_HOURS


def test_schedule_skips_hours_before_tenant(runtime: Runtime, cast: Cast) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)

    hours = schedule_roll_ups(runtime, before)

    assert len(hours) == 1
    assert runtime.jobs.huey.pending_count() == 0


def test_schedule_enqueues_lost_roll_up_again(runtime: Runtime, cast: Cast) -> None:
    schedule_roll_ups(runtime, at(1))
    runtime.jobs.huey.flush()  # as a worker killed while running the jobs leaves it

    schedule_roll_ups(runtime, at(3))

    assert queued_hours(runtime, cast.acme) == [[LATER, at(1, 0), at(2, 0)]]


def test_schedule_skips_finished_roll_up(runtime: Runtime, cast: Cast) -> None:
    schedule_roll_ups(runtime, at(1))
    runtime.jobs.huey.flush()
    roll_up_tenant(runtime, cast.acme, [LATER.isoformat()])

    schedule_roll_ups(runtime, at(3))

    assert queued_hours(runtime, cast.acme) == [[at(1, 0), at(2, 0)]]
    assert queued_hours(runtime, cast.globex) == [[LATER, at(1, 0), at(2, 0)]]


def test_scheduled_roll_ups_survive_restart(settings: Settings, cast: Cast) -> None:
    """Jobs enqueued by one runtime run in the next one, after the first has closed."""
    first = build_runtime(settings)
    try:
        store_bytes(first, cast)
        schedule_roll_ups(first, at(1))
        queued = first.jobs.huey.pending_count()
    finally:
        first.close()

    restarted = build_runtime(settings)
    try:
        with run_consumer(restarted.jobs) as watcher:
            # The queue runs in order, so the earlier jobs are done when this one is.
            last = restarted.jobs.enqueue(ROLL_UP, cast.globex.id, hours=[LATER.isoformat()])
            watcher.wait(last)
        row = only_row(restarted.engine, cast.acme.id)
    finally:
        restarted.close()

    assert queued == 2
    assert row.storage_byte_hours == STORED
