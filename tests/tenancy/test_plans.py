"""Plans, per-tenant overrides, modules and settings in the catalog, with their audit events."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from strongroom.base.errors import (
    AlreadyExists,
    BeyondPlan,
    Conflict,
    InvalidInput,
    ModuleDisabled,
    NotFound,
)
from strongroom.identity.users import create_user
from strongroom.runtime import Runtime
from strongroom.tenancy.configuration import set_modules, update_settings
from strongroom.tenancy.events import OPERATOR, Actor
from strongroom.tenancy.lifecycle import provision_tenant
from strongroom.tenancy.modules import check_module
from strongroom.tenancy.plans import (
    FROM_PLAN,
    count_tenants_by_plan,
    create_plan,
    delete_plan,
    get_plan,
    list_plans,
    set_limit_overrides,
    set_tenant_plan,
    update_plan,
)

PASSWORD = "a long test password"


@pytest.fixture
def logs() -> Iterator[list[dict]]:
    """Every event logged during the test, info included: the suite logs warnings only."""
    previous = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    try:
        with capture_logs() as captured:
            yield captured
    finally:
        structlog.configure(**previous)


def audit_events(logs: list[dict], action: str) -> list[dict]:
    return [entry for entry in logs if entry.get("event") == action and entry.get("audit")]


# Plans --------------------------------------------------------------------------------------


def test_default_plan_unlimited_all_modules(runtime: Runtime) -> None:
    tenant = provision_tenant(runtime.catalog, runtime.stores, "acme", isolation="shared")

    assert tenant.plan == "default"
    assert tenant.quota_bytes is None
    assert set(tenant.limits.as_dict().values()) == {None}
    assert tenant.modules == tenant.plan_modules
    assert len(tenant.modules) == 6


def test_plan_limits_reach_tenant(runtime: Runtime) -> None:
    create_plan(
        runtime.catalog,
        "basic",
        limits={"storage_bytes": 5000, "max_users": 3, "requests_per_minute": 60},
        modules=["versioning"],
        settings={"versions_kept": 2},
    )

    tenant = provision_tenant(runtime.catalog, runtime.stores, "acme", plan="basic")

    assert tenant.plan == "basic"
    assert tenant.quota_bytes == 5000
    assert tenant.limits.max_users == 3
    assert tenant.limits.requests_per_minute == 60
    assert tenant.modules == frozenset({"versioning"})
    assert tenant.settings.versions_kept == 2


def test_create_plan_rejects_bad_values(runtime: Runtime) -> None:
    with pytest.raises(InvalidInput, match="plan name 'Gold Plan' is invalid"):
        create_plan(runtime.catalog, "Gold Plan")
    with pytest.raises(InvalidInput, match="requests_per_minute 0 is invalid"):
        create_plan(runtime.catalog, "gold", limits={"requests_per_minute": 0})
    with pytest.raises(InvalidInput, match="module 'ftp' does not exist"):
        create_plan(runtime.catalog, "gold", modules=["ftp"])
    with pytest.raises(InvalidInput, match="time_zone: 'Nowhere/City' is not an IANA time zone"):
        create_plan(runtime.catalog, "gold", settings={"time_zone": "Nowhere/City"})
    with pytest.raises(InvalidInput, match="display_name belongs to each tenant"):
        create_plan(runtime.catalog, "gold", settings={"display_name": "Gold"})

    assert [plan.name for plan in list_plans(runtime.catalog)] == ["default"]


def test_create_plan_twice_conflicts(runtime: Runtime) -> None:
    create_plan(runtime.catalog, "gold")

    with pytest.raises(AlreadyExists, match="a plan named 'gold' exists"):
        create_plan(runtime.catalog, "gold")


def test_missing_plan_creates_no_tenant(runtime: Runtime) -> None:
    with pytest.raises(NotFound, match="no plan is named 'platinum'"):
        provision_tenant(runtime.catalog, runtime.stores, "acme", plan="platinum")

    assert runtime.catalog.list_tenants() == []


def test_update_plan_reaches_its_tenants(runtime: Runtime) -> None:
    create_plan(runtime.catalog, "basic", limits={"storage_bytes": 5000})
    provision_tenant(runtime.catalog, runtime.stores, "acme", plan="basic")

    update_plan(
        runtime.catalog,
        "basic",
        limits={"storage_bytes": None, "concurrent_transfers": 2},
        modules=["webdav"],
        settings={"locale": "de-CH"},
    )

    tenant = runtime.catalog.get_tenant("acme")
    assert tenant.quota_bytes is None
    assert tenant.limits.concurrent_transfers == 2
    assert tenant.modules == frozenset({"webdav"})
    assert tenant.settings.locale == "de-CH"


def test_delete_plan_only_when_unused(runtime: Runtime) -> None:
    create_plan(runtime.catalog, "basic")
    provision_tenant(runtime.catalog, runtime.stores, "acme", plan="basic")

    with pytest.raises(Conflict, match="plan 'basic' is the plan of 1 tenant;"):
        delete_plan(runtime.catalog, "basic")
    set_tenant_plan(runtime.catalog, runtime.stores, "acme", "default", OPERATOR)
    delete_plan(runtime.catalog, "basic")

    assert [plan.name for plan in list_plans(runtime.catalog)] == ["default"]
    assert count_tenants_by_plan(runtime.catalog) == {"default": 1}


def test_default_plan_cannot_be_deleted(runtime: Runtime) -> None:
    with pytest.raises(Conflict, match="the default plan cannot be deleted"):
        delete_plan(runtime.catalog, "default")

    assert get_plan(runtime.catalog, "default").name == "default"


# A tenant's plan and overrides ----------------------------------------------------------------


def test_set_tenant_plan_applies_new_limits(runtime: Runtime, logs: list[dict]) -> None:
    create_plan(runtime.catalog, "small", limits={"storage_bytes": 1000})
    provision_tenant(runtime.catalog, runtime.stores, "acme")

    tenant = set_tenant_plan(runtime.catalog, runtime.stores, "acme", "small", OPERATOR)

    assert tenant.quota_bytes == 1000
    assert runtime.catalog.get_tenant("acme").plan == "small"
    [event] = audit_events(logs, "plan_changed")
    assert event["old"] == {"plan": "default"}
    assert event["new"] == {"plan": "small"}
    assert event["actor"] == "operator"
    assert event["tenant"] == "acme"


def test_set_tenant_plan_rejects_missing_plan(runtime: Runtime) -> None:
    provision_tenant(runtime.catalog, runtime.stores, "acme")

    with pytest.raises(NotFound, match="no plan is named 'gold'"):
        set_tenant_plan(runtime.catalog, runtime.stores, "acme", "gold", OPERATOR)

    assert runtime.catalog.get_tenant("acme").plan == "default"


def test_overrides_replace_plan_limits(runtime: Runtime, logs: list[dict]) -> None:
    create_plan(runtime.catalog, "small", limits={"storage_bytes": 1000, "max_file_size": 100})
    provision_tenant(runtime.catalog, runtime.stores, "acme", plan="small")

    overridden = set_limit_overrides(
        runtime.catalog,
        runtime.stores,
        "acme",
        {"storage_bytes": None, "requests_per_minute": 30},
        OPERATOR,
    )

    restored = set_limit_overrides(
        runtime.catalog, runtime.stores, "acme", {"storage_bytes": FROM_PLAN}, OPERATOR
    )

    assert overridden.quota_bytes is None
    assert overridden.limits.requests_per_minute == 30
    assert overridden.limits.max_file_size == 100
    assert restored.quota_bytes == 1000
    assert restored.limits.requests_per_minute == 30
    [first, second] = audit_events(logs, "limits_changed")
    assert first["old"] == {}
    assert first["new"] == {"storage_bytes": None, "requests_per_minute": 30}
    assert second["new"] == {"requests_per_minute": 30}


def test_overrides_reject_unknown_limit(runtime: Runtime) -> None:
    provision_tenant(runtime.catalog, runtime.stores, "acme")

    with pytest.raises(InvalidInput, match="'seats' is not a limit"):
        set_limit_overrides(runtime.catalog, runtime.stores, "acme", {"seats": 3}, OPERATOR)


def test_set_quota_is_storage_override(runtime: Runtime) -> None:
    create_plan(runtime.catalog, "small", limits={"storage_bytes": 1000})
    provision_tenant(runtime.catalog, runtime.stores, "acme", plan="small")

    runtime.catalog.set_quota("acme", None)

    assert runtime.catalog.get_tenant("acme").quota_bytes is None


# Modules --------------------------------------------------------------------------------------


def test_modules_switch_off_and_on(runtime: Runtime, logs: list[dict]) -> None:
    provision_tenant(runtime.catalog, runtime.stores, "acme")

    off = set_modules(runtime.catalog, runtime.stores, "acme", {"webdav": False}, OPERATOR)

    on = set_modules(runtime.catalog, runtime.stores, "acme", {"webdav": True}, OPERATOR)

    assert "webdav" not in off.modules
    assert "webdav" in on.modules
    [first, second] = audit_events(logs, "modules_changed")
    assert first["old"] == {"webdav": True}
    assert first["new"] == {"webdav": False}
    assert second["new"] == {"webdav": True}


def test_module_outside_plan_cannot_be_enabled(runtime: Runtime) -> None:
    create_plan(runtime.catalog, "basic", modules=["versioning"])
    provision_tenant(runtime.catalog, runtime.stores, "acme", plan="basic")

    with pytest.raises(BeyondPlan, match="the plan 'basic' of tenant 'acme' does not include webdav"):
        set_modules(runtime.catalog, runtime.stores, "acme", {"webdav": True}, OPERATOR)

    assert "webdav" not in runtime.catalog.get_tenant("acme").modules


def test_check_module_names_who_disabled_it(runtime: Runtime) -> None:
    create_plan(runtime.catalog, "basic", modules=["versioning"])
    provision_tenant(runtime.catalog, runtime.stores, "acme", plan="basic")
    tenant = set_modules(runtime.catalog, runtime.stores, "acme", {"versioning": False}, OPERATOR)

    with pytest.raises(ModuleDisabled, match="the tenant administrator disabled it"):
        check_module(tenant, "versioning")
    with pytest.raises(ModuleDisabled, match="the plan 'basic' does not include it"):
        check_module(tenant, "webdav")


# Settings -------------------------------------------------------------------------------------


def test_update_settings_records_old_and_new(runtime: Runtime, logs: list[dict]) -> None:
    provision_tenant(runtime.catalog, runtime.stores, "acme", "Acme")

    tenant = update_settings(
        runtime.catalog,
        runtime.stores,
        "acme",
        {"time_zone": "Europe/Paris", "display_name": "Acme Corp"},
        Actor("someone"),
    )

    assert tenant.settings.time_zone == "Europe/Paris"
    assert tenant.name == "Acme Corp"
    [event] = audit_events(logs, "settings_changed")
    assert event["actor"] == "someone@acme"
    assert event["old"] == {"display_name": "Acme", "time_zone": "UTC"}
    assert event["new"] == {"display_name": "Acme Corp", "time_zone": "Europe/Paris"}


def test_settings_null_restores_plan_default(runtime: Runtime) -> None:
    create_plan(runtime.catalog, "basic", settings={"versions_kept": 5})
    provision_tenant(runtime.catalog, runtime.stores, "acme", plan="basic")

    changed = update_settings(
        runtime.catalog, runtime.stores, "acme", {"versions_kept": 2}, OPERATOR
    )
    restored = update_settings(
        runtime.catalog, runtime.stores, "acme", {"versions_kept": None}, OPERATOR
    )

    assert changed.settings.versions_kept == 2
    assert restored.settings.versions_kept == 5


def test_settings_nested_patch_keeps_other_rules(runtime: Runtime) -> None:
    provision_tenant(runtime.catalog, runtime.stores, "acme")
    update_settings(
        runtime.catalog, runtime.stores, "acme", {"password_policy": {"require_digit": True}}, OPERATOR
    )

    tenant = update_settings(
        runtime.catalog, runtime.stores, "acme", {"password_policy": {"min_length": 16}}, OPERATOR
    )

    assert tenant.settings.password_policy.min_length == 16
    assert tenant.settings.password_policy.require_digit is True


def test_settings_reject_invalid_and_keep_old(runtime: Runtime) -> None:
    before = provision_tenant(runtime.catalog, runtime.stores, "acme").settings
    cases = {
        "locale": ("english please", "locale: 'english please' is not a language tag"),
        "blocked_extensions": (["ok", "bad/ending"], "'bad/ending' is not a file name ending"),
        "trash_retention_days": (-1, "trash_retention_days: -1 is less than the minimum, 0"),
        "colour": ("blue", "colour: no such setting"),
    }
    for name, (value, message) in cases.items():
        with pytest.raises(InvalidInput, match=message):
            update_settings(runtime.catalog, runtime.stores, "acme", {name: value}, OPERATOR)

    assert runtime.catalog.get_tenant("acme").settings == before


def test_settings_max_file_size_within_plan(runtime: Runtime) -> None:
    create_plan(runtime.catalog, "basic", limits={"max_file_size": 1000})
    provision_tenant(runtime.catalog, runtime.stores, "acme", plan="basic")

    with pytest.raises(BeyondPlan, match="max_file_size: 2000 bytes is more than the 1000 bytes"):
        update_settings(runtime.catalog, runtime.stores, "acme", {"max_file_size": 2000}, OPERATOR)
    tenant = update_settings(
        runtime.catalog, runtime.stores, "acme", {"max_file_size": 500}, OPERATOR
    )

    assert tenant.max_file_size == 500


# Users ----------------------------------------------------------------------------------------


def test_user_limit_enforced_on_create(runtime: Runtime) -> None:
    create_plan(runtime.catalog, "duo", limits={"max_users": 2})
    tenant = provision_tenant(runtime.catalog, runtime.stores, "acme", plan="duo")
    with runtime.stores.session(tenant, write=True) as session:
        create_user(session, "a@acme.test", PASSWORD, tenant=tenant)
        create_user(session, "b@acme.test", PASSWORD, tenant=tenant)

    with (
        pytest.raises(BeyondPlan, match="tenant 'acme' has 2 users, the most its plan 'duo' allows"),
        runtime.stores.session(tenant, write=True) as session,
    ):
        create_user(session, "c@acme.test", PASSWORD, tenant=tenant)


def test_password_policy_enforced_on_create(runtime: Runtime) -> None:
    tenant = provision_tenant(runtime.catalog, runtime.stores, "acme")
    tenant = update_settings(
        runtime.catalog,
        runtime.stores,
        "acme",
        {"password_policy": {"min_length": 20, "require_digit": True}},
        OPERATOR,
    )

    with runtime.stores.session(tenant, write=True) as session:
        with pytest.raises(InvalidInput, match="requires at least 20"):
            create_user(session, "a@acme.test", "only sixteen chr", tenant=tenant)
        with pytest.raises(InvalidInput, match="requires a digit"):
            create_user(session, "a@acme.test", "twenty characters long", tenant=tenant)
        user = create_user(session, "a@acme.test", "twenty characters long 2", tenant=tenant)

    assert user.email == "a@acme.test"
