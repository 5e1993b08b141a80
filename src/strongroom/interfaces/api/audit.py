"""The tenant's audit trail for its admins: pages of events as JSON, and an export as JSON Lines.

Both take the same filters: `action`, `actor` (a user id, `operator` or
`anonymous`), `since` (inclusive) and `until` (exclusive). A time without a
UTC offset is read in the tenant's time zone.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from strongroom.interfaces.api.dependencies import API_PREFIX, AdminDep, RuntimeDep, TenantDep
from strongroom.runtime import Runtime
from strongroom.tenancy import audit
from strongroom.tenancy.audit import AuditFilter, Cursor
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.time_zones import tenant_time_zone

router = APIRouter(prefix=API_PREFIX, tags=["audit"])

JSON_LINES = "application/x-ndjson"

ActionQuery = Annotated[str | None, Query(description="only events of this action")]
ActorQuery = Annotated[
    str | None, Query(description="only events of this actor: a user id, operator or anonymous")
]
SinceQuery = Annotated[str | None, Query(description="only events at or after this ISO 8601 time")]
UntilQuery = Annotated[str | None, Query(description="only events before this ISO 8601 time")]


class AuditTarget(BaseModel):
    type: str
    id: str


class AuditEventOut(BaseModel):
    id: str
    time: str = Field(description="when it happened, in UTC")
    actor: str = Field(description="a user id of the tenant, operator or anonymous")
    action: str
    target: AuditTarget | None
    address: str | None = Field(description="the client's IP address; null for the command line")
    old: dict[str, Any] | None
    new: dict[str, Any] | None


class AuditPage(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None = Field(
        description="pass it as cursor for the next, older page; null on the last page"
    )


@router.get("/audit", response_model=AuditPage, summary="Read the audit trail, newest first (admins)")
def list_audit_events(
    runtime: RuntimeDep,
    tenant: TenantDep,
    _admin: AdminDep,
    action: ActionQuery = None,
    actor: ActorQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
    limit: Annotated[str | None, Query(description="events per page, 1 to 1000")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> AuditPage:
    chosen = audit.parse_filter(tenant_time_zone(tenant), action, actor, since, until)
    size = audit.parse_limit(limit)
    after = audit.decode_cursor(cursor) if cursor else None
    with runtime.stores.session(tenant) as session:
        page = audit.list_events(session, chosen, size, after)
        items = [AuditEventOut.model_validate(audit.event_json(row)) for row in page.events]
    next_cursor = audit.encode_cursor(page.next_cursor) if page.next_cursor else None
    return AuditPage(items=items, next_cursor=next_cursor)


@router.get(
    "/audit/export",
    summary="Export the audit trail as JSON Lines, oldest first (admins)",
    response_class=StreamingResponse,
    responses={200: {"content": {JSON_LINES: {}}, "description": "one event per line"}},
)
async def export_audit_events(
    runtime: RuntimeDep,
    tenant: TenantDep,
    _admin: AdminDep,
    action: ActionQuery = None,
    actor: ActorQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
) -> StreamingResponse:
    # Checked before the response starts, so that a bad filter gets a 400 and not a cut stream.
    chosen = audit.parse_filter(tenant_time_zone(tenant), action, actor, since, until)
    headers = {"Content-Disposition": f'attachment; filename="audit-{tenant.slug}.jsonl"'}
    return StreamingResponse(
        export_lines(runtime, tenant, chosen), media_type=JSON_LINES, headers=headers
    )


async def export_lines(
    runtime: Runtime, tenant: TenantInfo, chosen: AuditFilter
) -> AsyncIterator[bytes]:
    """Yield the matching events as JSON Lines, one batch per worker-thread read."""
    after: Cursor | None = None
    while True:
        lines, after = await anyio.to_thread.run_sync(_read_lines, runtime, tenant, chosen, after)
        if lines:
            yield lines
        if after is None:
            return


def _read_lines(
    runtime: Runtime, tenant: TenantInfo, chosen: AuditFilter, after: Cursor | None
) -> tuple[bytes, Cursor | None]:
    """Return one batch as JSON Lines, and the cursor after it, or None when it was the last."""
    with runtime.stores.session(tenant) as session:
        rows = audit.read_batch(session, chosen, after, audit.EXPORT_BATCH)
        text = "".join(json.dumps(audit.event_json(row), sort_keys=True) + "\n" for row in rows)
    last = audit.cursor_after(rows[-1]) if len(rows) == audit.EXPORT_BATCH else None
    return text.encode("utf-8"), last
