"""Prometheus monitoring: per-plan gauges, the ten heaviest tenants, alert rules and the dashboard."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from strongroom.base import metrics
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.metering import HOUR_SECONDS, Batch, start_of_hour, write_batch
from strongroom.tenancy.monitoring import record_rate_limit_rejection, refresh_gauges
from strongroom.tenancy.rollups import roll_up_hour
from tests.conftest import Cast
from tests.services import MissingService
from tests.services.fixtures import require_service

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ALERT_RULES = DEPLOY / "prometheus" / "strongroom-alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "strongroom-alerts.test.yml"
DASHBOARD = DEPLOY / "grafana" / "strongroom.json"
METRIC_NAME = re.compile(r"\bstrongroom_[a-z0-9_]+")

NOW = dt.datetime(2026, 11, 5, 10, 20, tzinfo=dt.UTC)
LAST_HOUR = start_of_hour(NOW) - dt.timedelta(hours=1)


def sample(name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def heaviest_labels(name: str) -> set[str]:
    """Return the tenant slugs that a heaviest-tenant gauge names."""
    family = next(family for family in metrics.registry.collect() if family.name == name)
    return {sample.labels["tenant"] for sample in family.samples}


def make_tenants(runtime: Runtime, count: int) -> list[TenantInfo]:
    """Create catalog entries only: the gauges read the catalog, never a tenant's store."""
    return [runtime.catalog.create_tenant(f"tenant-{n:02}") for n in range(count)]


def record_hour(runtime: Runtime, tenant: TenantInfo, requests: int, moved: int, stored: int) -> None:
    """Record a tenant's use of LAST_HOUR, as the meter and the roll-up would."""
    epoch_hour = int(LAST_HOUR.timestamp()) // HOUR_SECONDS
    write_batch(runtime.engine, Batch(counts={(tenant.id, epoch_hour): [requests, moved, 0]}))
    roll_up_hour(runtime.engine, tenant.id, LAST_HOUR, stored)


# Per plan and isolation level ----------------------------------------------------------------


def test_plan_gauges_count_tenants_and_storage(runtime: Runtime) -> None:
    small = runtime.catalog.create_tenant("small", quota_bytes=1000)
    full = runtime.catalog.create_tenant("full", quota_bytes=1000)
    runtime.catalog.create_tenant("free")
    record_hour(runtime, small, 1, 0, 100)
    record_hour(runtime, full, 1, 0, 950)

    refresh_gauges(runtime.catalog, NOW)

    group = {"plan": "default", "isolation": "shared"}
    assert sample("strongroom_tenants", **group, status="active") == 3
    assert sample("strongroom_storage_used_bytes", **group) == 1050
    assert sample("strongroom_storage_quota_bytes", **group) == 2000
    assert sample("strongroom_tenants_near_quota", **group) == 1


def test_plan_gauges_drop_vanished_status(runtime: Runtime) -> None:
    runtime.catalog.create_tenant("paused")
    runtime.catalog.set_status("paused", "suspended")
    refresh_gauges(runtime.catalog, NOW)
    runtime.catalog.set_status("paused", "active")

    refresh_gauges(runtime.catalog, NOW)

    group = {"plan": "default", "isolation": "shared"}
    assert sample("strongroom_tenants", **group, status="suspended") is None
    assert sample("strongroom_tenants", **group, status="active") == 1


def test_rate_limit_rejection_is_counted_by_plan(runtime: Runtime, cast: Cast) -> None:
    labels = {"plan": "default", "isolation": cast.acme.isolation, "limit": "tenant_rate"}
    before = sample("strongroom_rate_limit_rejections_total", **labels) or 0

    record_rate_limit_rejection(cast.acme, "tenant_rate")

    assert sample("strongroom_rate_limit_rejections_total", **labels) == before + 1


@pytest.mark.parametrize("limit", ["", "Tenant", "acme-rate", "user " + "x" * 40, "a" * 33])
def test_rate_limit_name_must_be_fixed_word(runtime: Runtime, cast: Cast, limit: str) -> None:
    with pytest.raises(ValueError, match="is not a fixed word"):
        record_rate_limit_rejection(cast.acme, limit)


# The heaviest tenants --------------------------------------------------------------------------


def test_heaviest_storage_names_ten_tenants(runtime: Runtime) -> None:
    tenants = make_tenants(runtime, 12)
    for rank, tenant in enumerate(tenants):
        record_hour(runtime, tenant, rank + 1, 0, (rank + 1) * 1000)

    refresh_gauges(runtime.catalog, NOW)

    named = heaviest_labels("strongroom_heaviest_tenant_storage_bytes")
    assert named == {tenant.slug for tenant in tenants[2:]}
    assert sample("strongroom_heaviest_tenant_storage_bytes", tenant="tenant-11") == 12_000
    assert heaviest_labels("strongroom_heaviest_tenant_requests") == named


def test_heaviest_drops_tenant_that_falls_out(runtime: Runtime) -> None:
    tenants = make_tenants(runtime, 11)
    for rank, tenant in enumerate(tenants):
        record_hour(runtime, tenant, 0, 0, (rank + 1) * 1000)
    refresh_gauges(runtime.catalog, NOW)
    roll_up_hour(runtime.engine, tenants[0].id, LAST_HOUR + dt.timedelta(hours=1), 99_000)

    refresh_gauges(runtime.catalog, NOW + dt.timedelta(hours=1))

    named = heaviest_labels("strongroom_heaviest_tenant_storage_bytes")
    assert len(named) == 10
    assert "tenant-00" in named
    assert "tenant-01" not in named
    assert sample("strongroom_heaviest_tenant_storage_bytes", tenant="tenant-01") is None


def test_heaviest_leaves_out_idle_tenants(runtime: Runtime) -> None:
    busy, idle = make_tenants(runtime, 2)
    record_hour(runtime, busy, 5, 500, 0)
    record_hour(runtime, idle, 0, 0, 0)

    refresh_gauges(runtime.catalog, NOW)

    assert heaviest_labels("strongroom_heaviest_tenant_requests") == {busy.slug}
    assert heaviest_labels("strongroom_heaviest_tenant_transfer_bytes") == {busy.slug}
    assert heaviest_labels("strongroom_heaviest_tenant_storage_bytes") == set()


# Alert rules and dashboard ---------------------------------------------------------------------


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        require_service(MissingService("promtool", "prometheus"))
    assert found is not None
    return found


def test_alert_rules_pass_promtool_check() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(ALERT_RULES)],
        capture_output=True, text=True, timeout=60, check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_their_unit_tests() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", str(ALERT_TESTS)],
        capture_output=True, text=True, timeout=60, check=False, cwd=ALERT_TESTS.parent,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def exposed_names(text: str) -> set[str]:
    """Return every metric name a query may use against this exposition text."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _hash, _type, name, kind = line.split()
            names.add(name)
            if kind == "histogram":
                names.update(f"{name}_{suffix}" for suffix in ("bucket", "sum", "count"))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def rule_exprs() -> list[str]:
    rules = yaml.safe_load(ALERT_RULES.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_dashboard_has_panels_with_queries() -> None:
    dashboard = json.loads(DASHBOARD.read_text())

    assert dashboard["uid"] == "strongroom-overview"
    assert len(dashboard_exprs()) >= 10
    assert all(METRIC_NAME.search(expr) for expr in dashboard_exprs())


def test_dashboard_and_rules_use_exposed_metrics(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    alice = cast.acme_member
    client.put(alice.url("files/a.txt"), content=b"a", headers=alice.headers)
    client.get(alice.url("files/a.txt"), headers=alice.headers)
    refresh_gauges(runtime.catalog)

    exposed = exposed_names(client.get("/metrics").text)

    exprs = dashboard_exprs() + rule_exprs()
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert len(rule_exprs()) == 6
    assert used - exposed == set()
