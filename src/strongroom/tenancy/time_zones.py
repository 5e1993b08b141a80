"""The time zone a tenant shows times in: its `time_zone` setting, UTC when the system lacks it."""

from __future__ import annotations

import zoneinfo

from strongroom.base.logging import get_logger
from strongroom.tenancy.context import TenantInfo

log = get_logger(__name__)

UTC = zoneinfo.ZoneInfo("UTC")


def tenant_time_zone(tenant: TenantInfo) -> zoneinfo.ZoneInfo:
    """Return the zone of the tenant's `time_zone` setting, which was checked when it was set."""
    name = tenant.settings.time_zone
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        # Valid where it was set, missing from this replica's tz database: times still show, in UTC.
        log.warning("time_zone_unknown", time_zone=name, advice="install the tzdata package")
        return UTC
