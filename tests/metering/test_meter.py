"""The in-process meter: counting per tenant and hour, and flushing to the catalog exactly once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from strongroom.runtime import Runtime
from strongroom.storage.db import make_engine
from strongroom.tenancy.metering import Batch, Meter, status_class, write_batch
from tests.conftest import Cast
from tests.metering.readings import START, Clock, active_user_rows, hour_rows, only_row

HOUR = dt.datetime(2026, 11, 5, 10, tzinfo=dt.UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def meter(runtime: Runtime, clock: Clock) -> Meter:
    return Meter(runtime.engine, clock=clock)


def test_meter_flush_writes_counts(meter: Meter, runtime: Runtime, cast: Cast) -> None:
    meter.record_request(cast.acme, 200)
    meter.record_request(cast.acme, 404)
    meter.record_upload(cast.acme, 1000)
    meter.record_bytes_out(cast.acme, 300)
    meter.record_bytes_out(cast.acme, 200)

    assert meter.flush() is True

    row = only_row(runtime.engine, cast.acme.id)
    assert row.requests == 2
    assert row.bytes_in == 1000
    assert row.bytes_out == 500


@pytest.mark.parametrize(
    ("status", "label"),
    [
        (200, "2xx"),
        (404, "4xx"),
        (500, "5xx"),
        (503, "5xx"),
        (507, "5xx_client"),
        (502, "5xx_client"),
    ],
)
def test_status_class_keeps_client_5xx_apart(status: int, label: str) -> None:
    assert status_class(status) == label


@pytest.mark.parametrize("status", [500, 502, 507])
def test_status_class_of_server_fault_is_5xx(status: int) -> None:
    assert status_class(status, server_fault=True) == "5xx"


def test_meter_flush_keeps_tenants_apart(meter: Meter, runtime: Runtime, cast: Cast) -> None:
    meter.record_request(cast.acme, 200)
    meter.record_request(cast.globex, 200)
    meter.record_request(cast.globex, 200)

    meter.flush()

    assert only_row(runtime.engine, cast.acme.id).requests == 1
    assert only_row(runtime.engine, cast.globex.id).requests == 2


def test_meter_flush_again_adds_nothing(meter: Meter, runtime: Runtime, cast: Cast) -> None:
    meter.record_request(cast.acme, 200)
    meter.flush()

    meter.flush()

    assert only_row(runtime.engine, cast.acme.id).requests == 1


def test_meter_later_flush_adds_new_counts(meter: Meter, runtime: Runtime, cast: Cast) -> None:
    meter.record_request(cast.acme, 200)
    meter.flush()
    meter.record_request(cast.acme, 200)
    meter.record_upload(cast.acme, 10)

    meter.flush()

    row = only_row(runtime.engine, cast.acme.id)
    assert row.requests == 2
    assert row.bytes_in == 10


def test_meter_counts_each_hour_apart(
    meter: Meter, runtime: Runtime, cast: Cast, clock: Clock
) -> None:
    meter.record_request(cast.acme, 200)
    clock.advance(hours=1)
    meter.record_request(cast.acme, 200)
    meter.record_request(cast.acme, 200)

    meter.flush()

    rows = hour_rows(runtime.engine, cast.acme.id)
    assert {hour: row.requests for hour, row in rows.items()} == {
        HOUR: 1,
        HOUR + dt.timedelta(hours=1): 2,
    }


def test_meter_user_recorded_once_an_hour(
    meter: Meter, runtime: Runtime, cast: Cast, clock: Clock
) -> None:
    alice = cast.acme_member
    meter.record_user(alice.tenant, alice.user_id)
    meter.flush()
    meter.record_user(alice.tenant, alice.user_id)
    meter.flush()
    clock.advance(hours=1)
    meter.record_user(alice.tenant, alice.user_id)

    meter.flush()

    assert active_user_rows(runtime.engine, cast.acme.id) == 2


def test_meter_retried_batch_adds_nothing(runtime: Runtime, cast: Cast) -> None:
    """A batch whose first write committed, though its writer saw a failure, is not added twice."""
    batch = Batch(counts={(cast.acme.id, int(START.timestamp()) // 3600): [5, 50, 500]})
    write_batch(runtime.engine, batch)

    write_batch(runtime.engine, batch)

    row = only_row(runtime.engine, cast.acme.id)
    assert (row.requests, row.bytes_in, row.bytes_out) == (5, 50, 500)


def test_meter_failed_flush_keeps_counts(
    meter: Meter, runtime: Runtime, cast: Cast, tmp_path: Path
) -> None:
    unreachable = make_engine(f"sqlite:///{tmp_path / 'missing' / 'catalog.db'}")
    meter.engine = unreachable
    meter.record_request(cast.acme, 200)
    failed = meter.flush()
    meter.record_request(cast.acme, 200)
    meter.engine = runtime.engine

    written = meter.flush()

    unreachable.dispose()
    assert failed is False
    assert written is True
    assert only_row(runtime.engine, cast.acme.id).requests == 2
    assert meter.pending_batches() == 0


# Through the API ------------------------------------------------------------------------


@pytest.fixture
def usage_writes(runtime: Runtime) -> Iterator[list[str]]:
    """Statements that touch a usage table of the catalog, as the database receives them."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "usage_" in statement or "meter_flushes" in statement:
            statements.append(statement)

    event.listen(runtime.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(runtime.engine, "before_cursor_execute", record)


def test_api_requests_write_no_usage_row(
    client: httpx.Client, cast: Cast, usage_writes: list[str]
) -> None:
    alice = cast.acme_member
    for _ in range(5):
        assert client.get(alice.url("folders/"), headers=alice.headers).status_code == 200

    assert usage_writes == []


def test_api_requests_and_transfers_are_metered(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    alice = cast.acme_member
    body = b"x" * 5000
    client.put(alice.url("files/a.bin"), content=body, headers=alice.headers)
    client.get(alice.url("files/a.bin"), headers=alice.headers)
    client.get(alice.url("files/a.bin"), headers={**alice.headers, "Range": "bytes=0-99"})
    client.get(alice.url("folders/"))  # no token: 401, still a request to the tenant

    runtime.meter.flush()

    rows = hour_rows(runtime.engine, cast.acme.id).values()
    assert sum(row.requests for row in rows) == 4
    assert sum(row.bytes_in for row in rows) == 5000
    assert sum(row.bytes_out for row in rows) == 5100
    assert active_user_rows(runtime.engine, cast.acme.id) == 1
    assert hour_rows(runtime.engine, cast.globex.id) == {}


def test_api_unknown_tenant_is_not_metered(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    alice = cast.acme_member
    client.get("/t/nobody/api/v1/folders/", headers=alice.headers)

    runtime.meter.flush()

    assert hour_rows(runtime.engine, cast.acme.id) == {}
    assert runtime.meter.pending_batches() == 0
