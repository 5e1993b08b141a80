"""A month's usage per tenant: the sums that `strongroom usage` and the operator API return."""

from __future__ import annotations

import datetime as dt

import pytest

from strongroom.base.errors import InvalidInput, TenantNotFound
from strongroom.runtime import Runtime
from strongroom.tenancy.usage_report import as_csv, as_document, monthly_usage, parse_month
from tests.conftest import Cast


def test_monthly_usage_sums_the_month(runtime: Runtime, metered: Cast) -> None:
    usages = {usage.slug: usage for usage in monthly_usage(runtime.catalog, "2026-11")}

    acme = usages["acme"]
    assert acme.requests == 15
    assert acme.bytes_in == 1000
    assert acme.bytes_out == 2500
    assert acme.storage_byte_hours == 10_000
    assert acme.storage_hours == 2
    assert acme.active_users == 2


def test_monthly_usage_lists_idle_tenant(runtime: Runtime, metered: Cast) -> None:
    usages = {usage.slug: usage for usage in monthly_usage(runtime.catalog, "2026-11")}

    globex = usages["globex"]
    assert (globex.requests, globex.bytes_in, globex.storage_byte_hours) == (0, 0, 0)
    assert globex.tenant_id == metered.globex.id


def test_monthly_usage_december_ends_at_new_year(runtime: Runtime, metered: Cast) -> None:
    (acme,) = monthly_usage(runtime.catalog, "2026-12", "acme")

    assert acme.requests == 7
    assert acme.storage_byte_hours == 9000
    assert acme.active_users == 1


def test_monthly_usage_of_one_tenant(runtime: Runtime, metered: Cast) -> None:
    usages = monthly_usage(runtime.catalog, "2026-11", "globex")

    assert [usage.slug for usage in usages] == ["globex"]


def test_monthly_usage_unknown_tenant_is_rejected(runtime: Runtime, metered: Cast) -> None:
    with pytest.raises(TenantNotFound, match="'nobody'"):
        monthly_usage(runtime.catalog, "2026-11", "nobody")


@pytest.mark.parametrize(
    "month", ["2026-13", "2026-00", "26-11", "2026-1", "2026/11", "", "\uff12\uff10\uff12\uff16-11"]
)
def test_parse_month_rejects_other_forms(month: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_month(month)

    assert raised.value.detail == (
        f"month {month!r} is not in the form YYYY-MM; give one such as 2026-11"
    )


@pytest.mark.parametrize("month", ["9999-12", "0000-01"])
def test_parse_month_rejects_years_out_of_range(month: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_month(month)

    assert raised.value.detail == f"month {month!r} is out of range; give a year from 1 to 9998"


def test_parse_month_returns_bounds() -> None:
    assert parse_month("2026-12") == (
        dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
    )


def test_usage_document_is_keyed_by_slug(runtime: Runtime, metered: Cast) -> None:
    document = as_document(monthly_usage(runtime.catalog, "2026-11"))

    assert sorted(document) == ["acme", "globex"]
    assert document["acme"] == {
        "tenant_id": str(metered.acme.id),
        "requests": 15,
        "bytes_in": 1000,
        "bytes_out": 2500,
        "storage_byte_hours": 10_000,
        "active_users": 2,
        "storage_hours": 2,
    }


def test_usage_csv_has_header_and_line_each(runtime: Runtime, metered: Cast) -> None:
    text = as_csv("2026-11", monthly_usage(runtime.catalog, "2026-11"))

    assert text.splitlines() == [
        (
            "month,slug,tenant_id,requests,bytes_in,bytes_out,storage_byte_hours,"
            "active_users,storage_hours"
        ),
        f"2026-11,acme,{metered.acme.id},15,1000,2500,10000,2,2",
        f"2026-11,globex,{metered.globex.id},0,0,0,0,0,0",
    ]
