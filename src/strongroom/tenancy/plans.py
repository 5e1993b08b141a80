"""Plans: named bundles of limits, allowed modules and default settings, and each tenant's plan.

A tenant has exactly one plan, `default` unless the operator chose another,
and may have per-tenant limit overrides on top (tenancy/limits.py). The
`default` plan exists from the first migration on, without limits. A plan can
be deleted only while no tenant has it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from strongroom.base.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from strongroom.base.logging import get_logger
from strongroom.tenancy.catalog import lock_plan, plan_limits, tenant_info
from strongroom.tenancy.context import DEFAULT_PLAN, TenantInfo
from strongroom.tenancy.events import Actor, Target, record_event
from strongroom.tenancy.limits import LIMIT_NAMES, TenantLimits, check_limits
from strongroom.tenancy.models import PlanRow, TenantRow
from strongroom.tenancy.modules import MODULES, check_module_names
from strongroom.tenancy.settings import (
    CATALOG_SETTINGS,
    merge_patch,
    stored_settings,
    validate_settings,
)

if TYPE_CHECKING:
    from strongroom.tenancy.catalog import Catalog
    from strongroom.tenancy.isolation import TenantStores

log = get_logger(__name__)

PLAN_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


class FromPlan:
    """The value of a limit override that removes it, so the tenant gets its plan's limit again."""

    def __repr__(self) -> str:
        return "FROM_PLAN"


FROM_PLAN = FromPlan()


@dataclass(frozen=True)
class Plan:
    name: str
    description: str
    limits: TenantLimits
    modules: tuple[str, ...]
    settings: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            **self.limits.as_dict(),
            "modules": list(self.modules),
            "settings": self.settings,
        }


DEFAULT = Plan(DEFAULT_PLAN, "No limits, every module", TenantLimits(), MODULES, {})


def plan_of(row: PlanRow) -> Plan:
    return Plan(
        name=row.name,
        description=row.description,
        limits=plan_limits(row),
        modules=tuple(name for name in MODULES if name in row.modules),
        settings=dict(row.settings or {}),
    )


def check_plan_name(name: str) -> str:
    if not PLAN_NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"plan name {name!r} is invalid; use 1 to 63 lowercase letters, digits and hyphens, "
            "starting with a letter or digit"
        )
    return name


def check_plan_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a plan's default settings and return them as stored."""
    catalog_only = [name for name in settings if name in CATALOG_SETTINGS]
    if catalog_only:
        raise InvalidInput(
            f"{', '.join(catalog_only)} belongs to each tenant and cannot have a plan default"
        )
    return stored_settings(settings, validate_settings(settings))


# Plans ----------------------------------------------------------------------------------


def list_plans(catalog: Catalog) -> list[Plan]:
    with catalog.session() as session:
        rows = session.scalars(select(PlanRow).order_by(PlanRow.name)).all()
        plans = [plan_of(row) for row in rows]
    if not any(plan.name == DEFAULT_PLAN for plan in plans):
        plans.insert(0, DEFAULT)
    return plans


def get_plan(catalog: Catalog, name: str) -> Plan:
    with catalog.session() as session:
        row = session.get(PlanRow, name)
        if row is not None:
            return plan_of(row)
    if name == DEFAULT_PLAN:
        return DEFAULT
    raise NotFound(f"no plan is named {name!r}; see `strongroom plan list`")


def count_tenants_by_plan(catalog: Catalog) -> dict[str, int]:
    with catalog.session() as session:
        rows = session.execute(select(TenantRow.plan, func.count()).group_by(TenantRow.plan)).all()
    return {plan: count for plan, count in rows}


def create_plan(
    catalog: Catalog,
    name: str,
    description: str = "",
    limits: Mapping[str, Any] | None = None,
    modules: Iterable[str] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Plan:
    """Create a plan; limits not given are unlimited, and without `modules` every module is allowed."""
    check_plan_name(name)
    checked = check_limits(limits or {})
    allowed = MODULES if modules is None else tuple(check_module_names(modules))
    defaults = check_plan_settings(settings or {})
    with catalog.session(write=True) as session:
        if session.get(PlanRow, name) is not None:
            raise AlreadyExists(f"a plan named {name!r} exists; choose another name or update it")
        row = PlanRow(
            name=name,
            description=description[:500],
            modules=list(allowed),
            settings=defaults,
            **{limit: checked.get(limit) for limit in LIMIT_NAMES},
        )
        session.add(row)
        session.flush()
        plan = plan_of(row)
    log.info("plan_created", plan=name, **plan.limits.as_dict())
    return plan


def update_plan(
    catalog: Catalog,
    name: str,
    *,
    description: str | None = None,
    limits: Mapping[str, Any] | None = None,
    modules: Iterable[str] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Plan:
    """Change a plan; every tenant on it gets the change within the catalog cache's lifetime.

    `limits` maps limit names to new values (None is unlimited) and `settings`
    is a JSON merge patch of the default settings.
    """
    checked = check_limits(limits or {})
    allowed = None if modules is None else check_module_names(modules)
    with catalog.session(write=True) as session:
        row = _locked_plan(session, name)
        old = plan_of(row)
        if description is not None:
            row.description = description[:500]
        for limit, value in checked.items():
            setattr(row, limit, value)
        if allowed is not None:
            row.modules = list(allowed)
        if settings is not None:
            row.settings = check_plan_settings(merge_patch(row.settings or {}, settings))
        session.flush()
        plan = plan_of(row)
    catalog.invalidate()
    log.info("plan_changed", plan=name, old=old.as_dict(), new=plan.as_dict())
    return plan


def delete_plan(catalog: Catalog, name: str) -> None:
    if name == DEFAULT_PLAN:
        raise Conflict("the default plan cannot be deleted: tenants created without --plan get it")
    with catalog.session(write=True) as session:
        row = _locked_plan(session, name)
        users = session.scalar(select(func.count()).where(TenantRow.plan == name)) or 0
        if users:
            tenants = "1 tenant" if users == 1 else f"{users} tenants"
            raise Conflict(
                f"plan {name!r} is the plan of {tenants}; move them to another plan with "
                "`strongroom tenant set-plan` first"
            )
        session.delete(row)
    log.info("plan_deleted", plan=name)


def _locked_plan(session: Session, name: str) -> PlanRow:
    """Return the plan's row, locked until commit (PostgreSQL), or raise NotFound."""
    row = session.scalars(select(PlanRow).where(PlanRow.name == name).with_for_update()).first()
    if row is None:
        raise NotFound(f"no plan is named {name!r}; see `strongroom plan list`")
    return row


# A tenant's plan and overrides ------------------------------------------------------------


def set_tenant_plan(
    catalog: Catalog, stores: TenantStores, slug: str, plan_name: str, actor: Actor
) -> TenantInfo:
    """Move a tenant to another plan; its overrides, module choices and settings stay."""
    with catalog.session(write=True) as session:
        lock_plan(session, plan_name)
        row = catalog.get_row(session, slug)
        old_plan = row.plan
        row.plan = plan_name
        session.flush()
        # The relationship still contains the old plan's row until it is loaded again.
        session.expire(row, ["plan_row"])
        tenant = tenant_info(row)
    catalog.invalidate(slug)
    if old_plan != plan_name:
        record_event(
            stores,
            tenant,
            "plan_changed",
            actor,
            target=Target("tenant", tenant.id),
            old={"plan": old_plan},
            new={"plan": plan_name},
        )
    return tenant


def set_limit_overrides(
    catalog: Catalog, stores: TenantStores, slug: str, changes: Mapping[str, Any], actor: Actor
) -> TenantInfo:
    """Override limits of the tenant's plan: a value of None is unlimited, FROM_PLAN removes one."""
    removed = [name for name, value in changes.items() if value is FROM_PLAN]
    checked = check_limits({name: value for name, value in changes.items() if value is not FROM_PLAN})
    check_limits({name: None for name in removed})
    with catalog.session(write=True) as session:
        row = catalog.get_row(session, slug)
        old = dict(row.limit_overrides or {})
        overrides = {name: value for name, value in {**old, **checked}.items() if name not in removed}
        row.limit_overrides = overrides
        tenant = tenant_info(row)
    catalog.invalidate(slug)
    if overrides != old:
        record_event(
            stores,
            tenant,
            "limits_changed",
            actor,
            target=Target("tenant", tenant.id),
            old=old,
            new=overrides,
        )
    return tenant
