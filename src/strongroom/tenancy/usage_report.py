"""A month's usage per tenant, for billing: the sums of the hourly rows.

`strongroom usage` and the operator API `GET /api/v1/operator/usage` print the
same document. In JSON it is one object whose keys are tenant slugs. Each
slug has the month's `requests`, `bytes_in` and `bytes_out` (plaintext bytes
of file content), and `storage_byte_hours`: stored bytes times hours, summed
over the hours rolled up so far. It also has `active_users`, the distinct
users who made an authenticated request in the month, `storage_hours`, the
number of hours with a storage sample, and `tenant_id`. In CSV it is one
line per tenant under a header. Hours run in UTC, and the hour still open has requests and bytes but
no storage until it is rolled up.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import uuid
from dataclasses import asdict, dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from strongroom.base.errors import InvalidInput
from strongroom.tenancy.catalog import Catalog
from strongroom.tenancy.context import PROVISIONING, TenantInfo
from strongroom.tenancy.models import ActiveUserRow, UsageHourRow

MONTH_PATTERN = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")
# The month after the last one must exist as a datetime too.
LAST_YEAR = dt.MAXYEAR - 1
FORMATS = ("json", "csv")


@dataclass(frozen=True)
class TenantUsage:
    slug: str
    tenant_id: uuid.UUID
    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    storage_byte_hours: int = 0
    active_users: int = 0
    storage_hours: int = 0


COLUMNS = ("month", *(name for name in TenantUsage.__dataclass_fields__))


def parse_month(text: str) -> tuple[dt.datetime, dt.datetime]:
    """Return the first instant of the month and of the next one, in UTC."""
    matched = MONTH_PATTERN.fullmatch(text.strip())
    if matched is None:
        raise InvalidInput(f"month {text!r} is not in the form YYYY-MM; give one such as 2026-11")
    year, month = int(matched[1]), int(matched[2])
    if not 1 <= year <= LAST_YEAR:
        raise InvalidInput(f"month {text!r} is out of range; give a year from 1 to {LAST_YEAR}")
    start = dt.datetime(year, month, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=dt.UTC)
    return start, end


def monthly_usage(catalog: Catalog, month: str, slug: str | None = None) -> list[TenantUsage]:
    """Return the month's usage of every tenant, or of the one with `slug`, by slug."""
    start, end = parse_month(month)
    if slug is not None:
        tenants = [catalog.get_tenant(slug)]
    else:
        tenants = [t for t in catalog.list_tenants() if t.status != PROVISIONING]
    sums, users = _sums(catalog, start, end, tenants if slug is not None else None)
    return [
        TenantUsage(
            slug=tenant.slug,
            tenant_id=tenant.id,
            **sums.get(tenant.id, {}),
            active_users=users.get(tenant.id, 0),
        )
        for tenant in sorted(tenants, key=lambda tenant: tenant.slug)
    ]


def _sums(
    catalog: Catalog, start: dt.datetime, end: dt.datetime, only: list[TenantInfo] | None
) -> tuple[dict[uuid.UUID, dict[str, int]], dict[uuid.UUID, int]]:
    hours = select(
        UsageHourRow.tenant_id,
        func.sum(UsageHourRow.requests),
        func.sum(UsageHourRow.bytes_in),
        func.sum(UsageHourRow.bytes_out),
        func.sum(UsageHourRow.storage_byte_hours),
        func.count(UsageHourRow.storage_bytes),
    ).where(UsageHourRow.hour >= start, UsageHourRow.hour < end)
    users = select(ActiveUserRow.tenant_id, func.count(func.distinct(ActiveUserRow.user_id))).where(
        ActiveUserRow.hour >= start, ActiveUserRow.hour < end
    )
    if only is not None:
        ids = [tenant.id for tenant in only]
        hours = hours.where(UsageHourRow.tenant_id.in_(ids))
        users = users.where(ActiveUserRow.tenant_id.in_(ids))

    with Session(catalog.engine) as session:
        sums = {
            # PostgreSQL sums BIGINT columns as NUMERIC, which arrives as Decimal.
            row[0]: {
                "requests": int(row[1] or 0),
                "bytes_in": int(row[2] or 0),
                "bytes_out": int(row[3] or 0),
                "storage_byte_hours": int(row[4] or 0),
                "storage_hours": int(row[5] or 0),
            }
            for row in session.execute(hours.group_by(UsageHourRow.tenant_id))
        }
        distinct_users = {
            tenant_id: int(count)
            for tenant_id, count in session.execute(users.group_by(ActiveUserRow.tenant_id))
        }
    return sums, distinct_users


def as_document(usages: list[TenantUsage]) -> dict[str, dict[str, object]]:
    """Return the JSON document: figures by tenant slug."""
    document: dict[str, dict[str, object]] = {}
    for usage in usages:
        figures = asdict(usage)
        del figures["slug"]
        figures["tenant_id"] = str(usage.tenant_id)
        document[usage.slug] = figures
    return document


def as_csv(month: str, usages: list[TenantUsage]) -> str:
    """Return the CSV text: a header, then one line per tenant."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for usage in usages:
        writer.writerow([month, *(getattr(usage, column) for column in COLUMNS[1:])])
    return buffer.getvalue()
