"""Modules: whole features that a tenant's plan allows and its administrator switches on or off.

A module is on when the plan allows it and the tenant has not switched it
off; a module the tenant never touched is on. The catalog stores the tenant's
own choices only, so a plan that starts allowing a module turns it on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from strongroom.base.errors import InvalidInput, ModuleDisabled

if TYPE_CHECKING:
    from strongroom.tenancy.context import TenantInfo

PUBLIC_LINKS = "public_links"
UPLOAD_REQUESTS = "upload_requests"
VERSIONING = "versioning"
WEBDAV = "webdav"
GUESTS = "guests"
WEBHOOKS = "webhooks"
MODULES = (PUBLIC_LINKS, UPLOAD_REQUESTS, VERSIONING, WEBDAV, GUESTS, WEBHOOKS)


def check_module_name(name: str) -> str:
    if name not in MODULES:
        raise InvalidInput(f"module {name!r} does not exist; use one of: {', '.join(MODULES)}")
    return name


def check_module_names(names: Iterable[str]) -> list[str]:
    return [check_module_name(name) for name in names]


def enabled_modules(allowed: Iterable[str], choices: Mapping[str, bool]) -> frozenset[str]:
    """Return the modules that are on, given the plan's allowed modules and the tenant's choices."""
    allowed_set = set(allowed)
    return frozenset(
        name for name in MODULES if name in allowed_set and choices.get(name, True) is not False
    )


def check_module(tenant: TenantInfo, name: str) -> None:
    """Raise ModuleDisabled (403) unless the module is on for the tenant.

    Routes served by FastAPI use the `require_module` dependency, which calls
    this; other mounts (WebDAV, tus) call it directly before serving a request.
    """
    if name in tenant.modules:
        return
    if name in tenant.plan_modules:
        reason = "the tenant administrator disabled it; ask a tenant admin to enable it"
    else:
        reason = f"the plan {tenant.plan!r} does not include it; ask the operator for another plan"
    raise ModuleDisabled(f"the {name} module is off for tenant {tenant.slug!r}: {reason}", module=name)

