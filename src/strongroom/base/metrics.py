"""Prometheus metrics of the process.

Labels name a tenant only on the `strongroom_heaviest_tenant_*` gauges, which
hold the ten heaviest tenants and nothing else: with thousands of tenants a
label per tenant would multiply every series by thousands. Other per-tenant
figures are labelled by plan and isolation level, a handful of values each,
and the full per-tenant figures belong to metering, which stores them as rows.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

registry = CollectorRegistry(auto_describe=True)

# How many tenants each `strongroom_heaviest_tenant_*` gauge names at most.
HEAVIEST_TENANTS = 10

http_requests = Counter(
    "strongroom_http_requests",
    "HTTP requests served, by method, route template and status code.",
    ["method", "route", "status"],
    registry=registry,
)

http_request_duration = Histogram(
    "strongroom_http_request_duration_seconds",
    "Time from receiving a request to sending the last byte of its response.",
    ["method", "route"],
    registry=registry,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

# A client may send any token as its method; the rest are counted as OTHER, so that
# made-up methods cannot add series without end.
HTTP_METHODS = frozenset(
    {
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
        "OPTIONS",
        "PROPFIND",
        "PROPPATCH",
        "MKCOL",
        "COPY",
        "MOVE",
        "LOCK",
        "UNLOCK",
        "REPORT",
    }
)

_request_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count a served request and its duration under its method, route template and status.

    The labelled series are looked up once per combination: `labels()` costs
    about as much as the rest of the two updates, on every request.
    """
    key = (method, route, status)
    series = _request_series.get(key)
    if series is None:
        label = method if method in HTTP_METHODS else "OTHER"
        series = (
            http_requests.labels(label, route, str(status)),
            http_request_duration.labels(label, route),
        )
        # Routes and statuses are few, so this stays small; it is bounded all the same.
        if len(_request_series) < 10_000:
            _request_series[key] = series
    series[0].inc()
    series[1].observe(seconds)


bytes_uploaded = Counter(
    "strongroom_uploaded_bytes",
    "Plaintext bytes of file content accepted by uploads.",
    registry=registry,
)

bytes_downloaded = Counter(
    "strongroom_downloaded_bytes",
    "Plaintext bytes of file content sent by downloads.",
    registry=registry,
)

login_failures = Counter(
    "strongroom_login_failures_total",
    "Web logins refused, by reason: password, second-factor or rate-limited.",
    ["reason"],
    registry=registry,
)

# Per plan and isolation level -----------------------------------------------------------

tenant_requests = Counter(
    "strongroom_tenant_requests",
    "Requests that reached a tenant, by the tenant's plan and isolation level and by status "
    "class: 2xx to 5xx, where 5xx are the server's errors (a full server storage among them), "
    "and 5xx_client for a full quota (507) or a WebDAV destination on another server (502).",
    ["plan", "isolation", "status_class"],
    registry=registry,
)

transfers = Counter(
    "strongroom_transfers",
    "File transfers: uploads when stored, downloads when their body starts.",
    ["direction", "plan", "isolation"],
    registry=registry,
)

transfer_bytes = Counter(
    "strongroom_transfer_bytes",
    "Plaintext bytes of file content uploaded or downloaded.",
    ["direction", "plan", "isolation"],
    registry=registry,
)

rate_limit_rejections = Counter(
    "strongroom_rate_limit_rejections",
    "Requests rejected with 429 by a rate or concurrency limit, by the limit that applied: "
    "tenant, user or transfers.",
    ["plan", "isolation", "limit"],
    registry=registry,
)

tenants = Gauge(
    "strongroom_tenants",
    "Tenants in the catalog, by status.",
    ["plan", "isolation", "status"],
    registry=registry,
)

storage_used = Gauge(
    "strongroom_storage_used_bytes",
    "Plaintext bytes stored, at the last hourly roll-up of each tenant.",
    ["plan", "isolation"],
    registry=registry,
)

storage_quota = Gauge(
    "strongroom_storage_quota_bytes",
    "Sum of the storage quotas of tenants that have one.",
    ["plan", "isolation"],
    registry=registry,
)

tenants_near_quota = Gauge(
    "strongroom_tenants_near_quota",
    "Tenants that used 90 % or more of their storage quota at their last roll-up.",
    ["plan", "isolation"],
    registry=registry,
)

# The heaviest tenants, by name -----------------------------------------------------------

heaviest_storage = Gauge(
    "strongroom_heaviest_tenant_storage_bytes",
    f"Bytes stored by the {HEAVIEST_TENANTS} tenants that store the most.",
    ["tenant"],
    registry=registry,
)

heaviest_requests = Gauge(
    "strongroom_heaviest_tenant_requests",
    f"Requests in the last full hour, for the {HEAVIEST_TENANTS} tenants that made the most.",
    ["tenant"],
    registry=registry,
)

heaviest_transfer = Gauge(
    "strongroom_heaviest_tenant_transfer_bytes",
    f"Bytes uploaded and downloaded in the last full hour, for the {HEAVIEST_TENANTS} tenants "
    "that moved the most.",
    ["tenant"],
    registry=registry,
)

# Background jobs ----------------------------------------------------------------------------

jobs = Counter(
    "strongroom_jobs",
    "Background jobs run by this process, by job name and outcome (done, failed, rejected).",
    ["job", "outcome"],
    registry=registry,
)

webhook_attempts = Counter(
    "strongroom_webhook_attempts",
    "Webhook delivery attempts, by outcome: delivered, retrying or dead.",
    ["outcome"],
    registry=registry,
)

gauges_refreshed = Gauge(
    "strongroom_gauges_refreshed_timestamp_seconds",
    "When the per-plan and heaviest-tenant gauges were last recomputed, in Unix time.",
    registry=registry,
)


def render() -> tuple[bytes, str]:
    return generate_latest(registry), CONTENT_TYPE_LATEST
