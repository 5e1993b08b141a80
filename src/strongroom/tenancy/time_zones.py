"""The time zone a tenant shows times in: its `time_zone` setting, UTC when unset or invalid."""

from __future__ import annotations

import uuid
import zoneinfo

from sqlalchemy import select

from strongroom.base.logging import get_logger
from strongroom.tenancy.catalog import Catalog
from strongroom.tenancy.models import TenantRow

log = get_logger(__name__)

UTC = zoneinfo.ZoneInfo("UTC")


def tenant_time_zone(catalog: Catalog, tenant_id: uuid.UUID) -> zoneinfo.ZoneInfo:
    """Return the tenant's time zone from the `time_zone` key of its catalog settings."""
    with catalog.session() as session:
        settings = session.scalar(select(TenantRow.settings).where(TenantRow.id == tenant_id))
    name = (settings or {}).get("time_zone")
    if not name:
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        # A name this system's tz database lacks, or no IANA name at all: times still show, in UTC.
        log.warning("time_zone_unknown", time_zone=str(name), advice="install the tzdata package")
        return UTC
