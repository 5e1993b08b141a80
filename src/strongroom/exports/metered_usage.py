"""The tenant's own metered use as an export: one line per UTC hour of a month.

The figures are the hourly rows that `strongroom usage` adds up for billing
(tenancy/usage_report.py): requests, plaintext bytes in and out, the stored
bytes sampled by the roll-up (empty until the hour is rolled up), byte-hours
and active users. Only hours with a row appear.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strongroom.base.errors import InvalidInput
from strongroom.exports.filters import check_filter_names
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.models import UsageHourRow
from strongroom.tenancy.usage_report import parse_month

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from strongroom.runtime import Runtime

FILTERS = ("month",)
COLUMNS = (
    "hour",
    "requests",
    "bytes_in",
    "bytes_out",
    "storage_bytes",
    "storage_byte_hours",
    "active_users",
)


def check_filters(_tenant: TenantInfo, filters: Mapping[str, Any]) -> dict[str, Any]:
    check_filter_names("usage", filters, FILTERS)
    month = filters.get("month")
    if not month:
        raise InvalidInput(
            "usage exports need the filter month, as YYYY-MM in UTC, such as 2026-11"
        )
    parse_month(month)
    return {"month": month.strip()}


def write(
    runtime: Runtime,
    tenant: TenantInfo,
    filters: dict[str, Any],
    format_name: str,
    sink: Callable[[bytes], None],
) -> None:
    month = filters["month"]
    hours = hourly_usage(runtime.engine, tenant, month)
    if format_name == "json":
        document = {"tenant": tenant.slug, "month": month, "hours": hours}
        sink((json.dumps(document, indent=2) + "\n").encode("utf-8"))
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for hour in hours:
        writer.writerow(["" if hour[column] is None else hour[column] for column in COLUMNS])
    sink(buffer.getvalue().encode("utf-8"))


def hourly_usage(engine: Engine, tenant: TenantInfo, month: str) -> list[dict[str, Any]]:
    """Return the tenant's hourly rows of the month, oldest first, from the catalog."""
    start, end = parse_month(month)
    query = (
        select(UsageHourRow)
        .where(
            UsageHourRow.tenant_id == tenant.id,
            UsageHourRow.hour >= start,
            UsageHourRow.hour < end,
        )
        .order_by(UsageHourRow.hour)
    )
    with Session(engine) as session:
        return [_hour_json(row) for row in session.scalars(query)]


def _hour_json(row: UsageHourRow) -> dict[str, Any]:
    hour = row.hour if row.hour.tzinfo else row.hour.replace(tzinfo=dt.UTC)
    return {
        "hour": hour.astimezone(dt.UTC).isoformat(),
        "requests": row.requests,
        "bytes_in": row.bytes_in,
        "bytes_out": row.bytes_out,
        "storage_bytes": row.storage_bytes,
        "storage_byte_hours": row.storage_byte_hours,
        "active_users": row.active_users,
    }
