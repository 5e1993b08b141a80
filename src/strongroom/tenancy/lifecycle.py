"""Tenant lifecycle steps that span the catalog and the tenant's store."""

from __future__ import annotations

from strongroom.tenancy.catalog import Catalog
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.isolation import TenantStores
from strongroom.tenancy.usage import set_usage


def provision_tenant(
    catalog: Catalog,
    stores: TenantStores,
    slug: str,
    name: str | None = None,
    quota_bytes: int | None = None,
) -> TenantInfo:
    """Create the tenant in the catalog, then its first rows in its store."""
    tenant = catalog.create_tenant(slug, name=name, quota_bytes=quota_bytes)
    with stores.session(tenant, write=True) as session:
        set_usage(session, tenant.id, 0)
    stores.initialize(tenant)
    return tenant
