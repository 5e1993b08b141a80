"""Changes to a tenant's settings and modules, each recorded as an audit event.

Tenant administrators make them through the API and the operator through the
command line; both call these functions, which own the catalog transaction
and write the audit event to the tenant's store once it commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from strongroom.base.errors import BeyondPlan, InvalidInput
from strongroom.base.validation import keys_holding_nul, nul_message
from strongroom.tenancy.catalog import Catalog, tenant_info
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.events import Actor, Target, record_event
from strongroom.tenancy.modules import check_module_names
from strongroom.tenancy.settings import (
    CATALOG_SETTINGS,
    SETTING_NAMES,
    TenantSettings,
    merge_patch,
    sections_of,
    setting_values,
    stored_settings,
    validate_settings,
)

if TYPE_CHECKING:
    from strongroom.tenancy.isolation import TenantStores


def update_settings(
    catalog: Catalog, stores: TenantStores, slug: str, patch: Mapping[str, Any], actor: Actor
) -> TenantInfo:
    """Apply a JSON merge patch to the tenant's settings, validate them, and record the change.

    A maximum file size above the plan's limit is rejected, because the limit
    would silently win over it.
    """
    holding_nul = keys_holding_nul(patch)
    if holding_nul:
        raise InvalidInput(nul_message(holding_nul))
    if "display_name" in patch and patch["display_name"] is None:
        raise InvalidInput("display_name: the display name cannot be reset; give a name")
    with catalog.session(write=True) as session:
        row = catalog.get_row(session, slug)
        before = tenant_info(row)
        own_patch = {key: value for key, value in patch.items() if key not in CATALOG_SETTINGS}
        own = merge_patch(setting_values(row.settings), own_patch)
        name = patch.get("display_name", row.name)
        plan_defaults = row.plan_row.settings if row.plan_row is not None else {}
        validated = validate_settings(
            merge_patch(merge_patch(plan_defaults, own), {"display_name": name})
        )
        _check_within_plan(validated, before)
        row.settings = {**sections_of(row.settings), **stored_settings(own, validated)}
        row.name = validated.display_name
        tenant = tenant_info(row)
    catalog.invalidate(slug)

    old, new = before.settings.model_dump(mode="json"), tenant.settings.model_dump(mode="json")
    changed = [key for key in SETTING_NAMES if old[key] != new[key]]
    if changed:
        record_event(
            stores,
            tenant,
            "settings_changed",
            actor,
            target=Target("tenant", tenant.id),
            old={key: old[key] for key in changed},
            new={key: new[key] for key in changed},
        )
    return tenant


def _check_within_plan(settings: TenantSettings, tenant: TenantInfo) -> None:
    limit = tenant.limits.max_file_size
    if settings.max_file_size is not None and limit is not None and settings.max_file_size > limit:
        raise BeyondPlan(
            f"max_file_size: {settings.max_file_size} bytes is more than the {limit} bytes that "
            f"the operator allows tenant {tenant.slug!r}; choose {limit} or less, or ask the "
            "operator for a larger limit"
        )


def set_modules(
    catalog: Catalog, stores: TenantStores, slug: str, changes: Mapping[str, bool], actor: Actor
) -> TenantInfo:
    """Switch modules on (True) or off (False) for a tenant, and record the change.

    A module that the tenant's plan does not allow cannot be switched on.
    """
    check_module_names(changes)
    with catalog.session(write=True) as session:
        row = catalog.get_row(session, slug)
        before = tenant_info(row)
        refused = [name for name, on in changes.items() if on and name not in before.plan_modules]
        if refused:
            raise BeyondPlan(
                f"the plan {before.plan!r} of tenant {slug!r} does not include "
                f"{', '.join(refused)}; move the tenant to a plan that does "
                "(`strongroom tenant set-plan`)"
            )
        row.modules = {**(row.modules or {}), **{name: bool(on) for name, on in changes.items()}}
        tenant = tenant_info(row)
    catalog.invalidate(slug)

    if tenant.modules != before.modules:
        record_event(
            stores,
            tenant,
            "modules_changed",
            actor,
            target=Target("tenant", tenant.id),
            old={name: name in before.modules for name in changes},
            new={name: name in tenant.modules for name in changes},
        )
    return tenant
