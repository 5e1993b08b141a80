"""The tenant's own configuration: settings, modules and the limits of its plan.

Every user can read them; only the tenant's admins change settings and modules.
Changes are JSON merge patches (RFC 7396) and land in the audit trail.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Body, Request

from strongroom.base.errors import InvalidInput
from strongroom.interfaces.api.dependencies import (
    API_PREFIX,
    AdminDep,
    PrincipalDep,
    RuntimeDep,
    TenantDep,
    actor_of,
)
from strongroom.interfaces.api.schemas import LimitsOut, ModuleOut, ModulesOut
from strongroom.tenancy.configuration import set_modules, update_settings
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.modules import MODULES
from strongroom.tenancy.settings import TenantSettings

router = APIRouter(prefix=API_PREFIX, tags=["administration"])

SETTINGS_PATCH_EXAMPLE = {"time_zone": "Europe/Paris", "blocked_extensions": ["exe", "bat"]}


@router.get("/settings", response_model=TenantSettings, summary="The tenant's settings in force")
async def get_settings(tenant: TenantDep, _principal: PrincipalDep) -> TenantSettings:
    return tenant.settings


@router.patch(
    "/settings",
    response_model=TenantSettings,
    summary="Change settings (admins): a JSON merge patch, null restores the plan's default",
)
async def patch_settings(
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    principal: AdminDep,
    patch: Annotated[
        dict[str, Any], Body(openapi_examples={"change": {"value": SETTINGS_PATCH_EXAMPLE}})
    ],
) -> TenantSettings:
    actor = actor_of(request, principal.user_id)
    changed = await anyio.to_thread.run_sync(
        update_settings, runtime.catalog, runtime.stores, tenant.slug, patch, actor
    )
    return changed.settings


@router.get("/modules", response_model=ModulesOut, summary="Which modules are on")
async def get_modules(tenant: TenantDep, _principal: PrincipalDep) -> ModulesOut:
    return _modules_out(tenant)


@router.patch(
    "/modules",
    response_model=ModulesOut,
    summary="Switch modules on or off (admins): an object of module names and true or false",
)
async def patch_modules(
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    principal: AdminDep,
    changes: Annotated[
        dict[str, Any], Body(openapi_examples={"change": {"value": {"webdav": False}}})
    ],
) -> ModulesOut:
    not_bool = [name for name, value in changes.items() if not isinstance(value, bool)]
    if not_bool:
        raise InvalidInput(f"{', '.join(not_bool)}: give true or false for each module")
    actor = actor_of(request, principal.user_id)
    changed = await anyio.to_thread.run_sync(
        set_modules, runtime.catalog, runtime.stores, tenant.slug, changes, actor
    )
    return _modules_out(changed)


@router.get("/limits", response_model=LimitsOut, summary="The tenant's plan and its limits")
async def get_limits(tenant: TenantDep, _principal: PrincipalDep) -> LimitsOut:
    return LimitsOut(plan=tenant.plan, **tenant.limits.as_dict())


def _modules_out(tenant: TenantInfo) -> ModulesOut:
    return ModulesOut(
        items=[
            ModuleOut(name=name, enabled=name in tenant.modules, allowed=name in tenant.plan_modules)
            for name in MODULES
        ]
    )
