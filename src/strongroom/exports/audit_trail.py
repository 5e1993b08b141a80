"""The audit trail as an export: the events that match the filters, oldest first, as JSON Lines.

It takes the filters of `GET {base}/api/v1/audit/export`, and each line is
the event as that route writes it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from strongroom.exports.filters import check_filter_names
from strongroom.tenancy import audit
from strongroom.tenancy.audit import AuditFilter, Cursor
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.time_zones import tenant_time_zone

if TYPE_CHECKING:
    from strongroom.runtime import Runtime

FILTERS = ("action", "actor", "since", "until")


def check_filters(tenant: TenantInfo, filters: Mapping[str, Any]) -> dict[str, Any]:
    """Check the filters as the audit routes do; return them with UTC times and no blanks."""
    check_filter_names("audit", filters, FILTERS)
    texts = {name: filters.get(name) or None for name in FILTERS}
    chosen = audit.parse_filter(tenant_time_zone(tenant), **texts)
    stored: dict[str, Any] = {"action": chosen.action, "actor": chosen.actor}
    stored["since"] = chosen.since.isoformat() if chosen.since else None
    stored["until"] = chosen.until.isoformat() if chosen.until else None
    return {name: value for name, value in stored.items() if value is not None}


def write(
    runtime: Runtime,
    tenant: TenantInfo,
    filters: dict[str, Any],
    _format: str,
    sink: Callable[[bytes], None],
) -> None:
    """Feed the matching events to `sink`, one batch per transaction."""
    chosen = _filter_of(filters)
    after: Cursor | None = None
    while True:
        with runtime.stores.session(tenant) as session:
            rows = audit.read_batch(session, chosen, after, audit.EXPORT_BATCH)
            text = "".join(json.dumps(audit.event_json(row), sort_keys=True) + "\n" for row in rows)
        if text:
            sink(text.encode("utf-8"))
        if len(rows) < audit.EXPORT_BATCH:
            return
        after = audit.cursor_after(rows[-1])


def _filter_of(filters: dict[str, Any]) -> AuditFilter:
    since, until = filters.get("since"), filters.get("until")
    return AuditFilter(
        action=filters.get("action"),
        actor=filters.get("actor"),
        since=dt.datetime.fromisoformat(since) if since else None,
        until=dt.datetime.fromisoformat(until) if until else None,
    )
