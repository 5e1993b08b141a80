"""Prometheus gauges computed from the catalog, and the counter that rate limits increment.

Each server calls `refresh_gauges` every STRONGROOM_METRICS_REFRESH_SECONDS.
It recomputes the tenant counts and storage per plan and isolation level,
and the ten heaviest tenants by name. It reads only catalog rows (the tenants and the
hourly usage that metering and the roll-up wrote), never a tenant's store, so
its cost does not grow with the number of tenant databases. Storage figures
are therefore as fresh as the last hourly roll-up.

Each gauge keeps only the label sets of its last computation: a tenant that
drops out of the ten heaviest, or a plan that no tenant has any more, loses
its series, so the number of series stays bounded.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
import uuid
from collections import Counter as Tally
from collections.abc import Mapping

from prometheus_client import Gauge
from sqlalchemy import Engine, and_, func, select
from sqlalchemy.orm import Session

from strongroom.base import metrics
from strongroom.tenancy.catalog import Catalog
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.metering import start_of_hour
from strongroom.tenancy.models import UsageHourRow

# Storage samples older than this are left out, because their tenant's roll-up has stopped.
STORAGE_SAMPLE_WINDOW = dt.timedelta(days=7)
NEAR_QUOTA_RATIO = 0.9
LIMIT_NAME = re.compile(r"[a-z][a-z_]{0,31}")

LabelValues = tuple[str, ...]

# The label sets each gauge was last given, so that the next refresh can remove the rest.
_series: dict[Gauge, set[LabelValues]] = {}
_series_lock = threading.Lock()


def record_rate_limit_rejection(tenant: TenantInfo, limit: str) -> None:
    """Count a request that a limit rejected with 429.

    `limit` names the kind of limit, such as "tenant_rate", "user_rate" or
    "transfers": a fixed word of lowercase letters and underscores, never an
    id, so that the label stays bounded.
    """
    if not LIMIT_NAME.fullmatch(limit):
        raise ValueError(
            f"limit name {limit!r} is not a fixed word of 1 to 32 lowercase letters and "
            "underscores; name the kind of limit, not the tenant or user"
        )
    metrics.rate_limit_rejections.labels(tenant.plan, tenant.isolation, limit).inc()


def refresh_gauges(catalog: Catalog, now: dt.datetime | None = None) -> None:
    """Recompute every catalog gauge: per plan and isolation level, and the heaviest tenants."""
    now = now or dt.datetime.now(dt.UTC)
    tenants = catalog.list_tenants()
    storage = latest_storage(catalog.engine, since=now - STORAGE_SAMPLE_WINDOW)
    requests, transferred = hour_figures(catalog.engine, start_of_hour(now) - dt.timedelta(hours=1))

    _set_plan_gauges(tenants, storage)
    slugs = {tenant.id: tenant.slug for tenant in tenants}
    replace_series(metrics.heaviest_storage, heaviest(storage, slugs))
    replace_series(metrics.heaviest_requests, heaviest(requests, slugs))
    replace_series(metrics.heaviest_transfer, heaviest(transferred, slugs))
    metrics.gauges_refreshed.set(time.time())


def _set_plan_gauges(tenants: list[TenantInfo], storage: Mapping[uuid.UUID, int]) -> None:
    counts: Tally[LabelValues] = Tally()
    used: Tally[LabelValues] = Tally()
    quota: Tally[LabelValues] = Tally()
    near_quota: Tally[LabelValues] = Tally()
    for tenant in tenants:
        group = (tenant.plan, tenant.isolation)
        counts[(*group, tenant.status)] += 1
        # Every group gets a series, at 0 when it has nothing to add, so a panel shows it.
        tenant_used = storage.get(tenant.id, 0)
        used[group] += tenant_used
        quota[group] += tenant.quota_bytes or 0
        near = tenant.quota_bytes is not None and tenant_used >= NEAR_QUOTA_RATIO * tenant.quota_bytes
        near_quota[group] += 1 if near else 0
    replace_series(metrics.tenants, counts)
    replace_series(metrics.storage_used, used)
    replace_series(metrics.storage_quota, quota)
    replace_series(metrics.tenants_near_quota, near_quota)


def heaviest(
    values: Mapping[uuid.UUID, int], slugs: Mapping[uuid.UUID, str]
) -> dict[LabelValues, float]:
    """Return the tenants with the largest positive values, at most HEAVIEST_TENANTS, by slug."""
    ranked = sorted(
        ((value, slugs[tenant_id]) for tenant_id, value in values.items()
         if value > 0 and tenant_id in slugs),
        key=lambda item: (-item[0], item[1]),
    )
    return {(slug,): value for value, slug in ranked[: metrics.HEAVIEST_TENANTS]}


def replace_series(gauge: Gauge, values: Mapping[LabelValues, float]) -> None:
    """Set the gauge to exactly these label sets: the others it had are removed."""
    with _series_lock:
        previous = _series.get(gauge, set())
        for labels in previous - set(values):
            gauge.remove(*labels)
        for labels, value in values.items():
            gauge.labels(*labels).set(value)
        _series[gauge] = set(values)


def latest_storage(engine: Engine, since: dt.datetime) -> dict[uuid.UUID, int]:
    """Return each tenant's stored bytes at its latest roll-up since `since`."""
    latest = (
        select(UsageHourRow.tenant_id, func.max(UsageHourRow.hour).label("hour"))
        .where(UsageHourRow.storage_bytes.is_not(None), UsageHourRow.hour >= since)
        .group_by(UsageHourRow.tenant_id)
        .subquery()
    )
    query = select(UsageHourRow.tenant_id, UsageHourRow.storage_bytes).join(
        latest,
        and_(UsageHourRow.tenant_id == latest.c.tenant_id, UsageHourRow.hour == latest.c.hour),
    )
    with Session(engine) as session:
        return {tenant_id: int(stored or 0) for tenant_id, stored in session.execute(query)}


def hour_figures(
    engine: Engine, hour: dt.datetime
) -> tuple[dict[uuid.UUID, int], dict[uuid.UUID, int]]:
    """Return each tenant's requests, and bytes uploaded plus downloaded, in one hour."""
    query = select(
        UsageHourRow.tenant_id,
        UsageHourRow.requests,
        UsageHourRow.bytes_in + UsageHourRow.bytes_out,
    ).where(UsageHourRow.hour == hour)
    requests: dict[uuid.UUID, int] = {}
    transferred: dict[uuid.UUID, int] = {}
    with Session(engine) as session:
        for tenant_id, count, moved in session.execute(query):
            requests[tenant_id] = int(count)
            transferred[tenant_id] = int(moved)
    return requests, transferred
