"""Tenant lifecycle steps that span the catalog and the tenant's store."""

from __future__ import annotations

import uuid
from typing import NoReturn

from strongroom.base.errors import ServiceUnavailable, StrongroomError
from strongroom.base.logging import get_logger
from strongroom.storage.db import TenantSession
from strongroom.tenancy.catalog import Catalog
from strongroom.tenancy.context import DEFAULT_PLAN, PROVISIONING, TenantInfo
from strongroom.tenancy.isolation import SHARED, TenantStores, describe_failure
from strongroom.tenancy.usage import set_usage

log = get_logger(__name__)


def start_usage(session: TenantSession) -> None:
    """Create the first row of every tenant store: its usage counter, at zero."""
    set_usage(session, session.tenant_id, 0)  # type: ignore[arg-type]


def provision_tenant(
    catalog: Catalog,
    stores: TenantStores,
    slug: str,
    name: str | None = None,
    quota_bytes: int | None = None,
    isolation: str = SHARED,
    server: str | None = None,
    plan: str = DEFAULT_PLAN,
) -> TenantInfo:
    """Create the tenant in the catalog, then its store and first rows, then open it.

    Until its store is ready the tenant is `provisioning`, which no request
    gets through. When a step fails, what was made is removed, and the catalog
    entry with it. If removing fails as well, the entry stays `provisioning`
    and the error names the store left behind.
    """
    tenant_id = uuid.uuid4()
    placement = stores.plan(tenant_id, isolation, server)
    tenant = catalog.create_tenant(
        slug,
        name=name,
        quota_bytes=quota_bytes,
        tenant_id=tenant_id,
        isolation=placement.isolation,
        server=placement.server,
        placement=placement.location,
        status=PROVISIONING,
        plan=plan,
    )
    try:
        revision = stores.create_store(tenant)
        stores.initialize(tenant)
    except Exception as exc:  # noqa: BLE001 - any failure is cleaned up, then raised
        _abandon(catalog, stores, tenant, exc)
    return catalog.finish_provisioning(tenant.id, revision)


def _abandon(catalog: Catalog, stores: TenantStores, tenant: TenantInfo, exc: Exception) -> NoReturn:
    """Remove a half-made tenant after `exc`, then raise the error the caller should see."""
    cause = exc.detail if isinstance(exc, StrongroomError) else describe_failure(exc)
    log.error("tenant_provisioning_failed", tenant=tenant.slug, error=cause)
    try:
        stores.drop_store(tenant)
        catalog.discard_tenant(tenant.id)
    except Exception as cleanup_exc:  # noqa: BLE001 - reported, and the first error is raised
        log.error(
            "tenant_cleanup_failed", tenant=tenant.slug, error=describe_failure(cleanup_exc)
        )
        raise ServiceUnavailable(
            f"creating the store of tenant {tenant.slug!r} failed ({cause}), and so did removing "
            f"what was made ({describe_failure(cleanup_exc)}); the tenant stays "
            f"{PROVISIONING!r} and serves no request. Remove its {tenant.isolation} store "
            f"{tenant.placement!r} by hand when the server is back"
        ) from exc
    if isinstance(exc, StrongroomError):
        raise exc
    raise ServiceUnavailable(
        f"creating the store of tenant {tenant.slug!r} on server {tenant.server!r} failed: "
        f"{cause}; nothing was kept, so run the command again once that is fixed"
    ) from exc
