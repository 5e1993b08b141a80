"""Prometheus metrics of the process.

Labels never carry a tenant: with thousands of tenants a label per tenant
would multiply every series by thousands. Per-tenant figures belong to
metering, which stores them as rows.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST

registry = CollectorRegistry(auto_describe=True)

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


rate_limited = Counter(
    "strongroom_rate_limited_requests",
    "Requests rejected with 429, by what was limited: tenant, user or transfers.",
    ["scope"],
    registry=registry,
)


def render() -> tuple[bytes, str]:
    return generate_latest(registry), CONTENT_TYPE_LATEST
