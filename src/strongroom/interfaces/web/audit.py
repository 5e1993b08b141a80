"""The admin page of the audit trail: filter the events, page through them, export them.

The filters are those of the REST API (`GET {base}/api/v1/audit`), sent as a
GET form so that a filtered page has a URL an admin can bookmark. The export
link streams the same events as JSON Lines, authenticated by the session.
The background export button requests an `audit` export job with the same
filters, and the page lists the tenant's exports (web/exports.py).
"""

from __future__ import annotations

import zoneinfo
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import StreamingResponse
from starlette.responses import Response

from strongroom.base.errors import InvalidInput
from strongroom.identity import users
from strongroom.interfaces.api.audit import JSON_LINES, export_lines
from strongroom.interfaces.api.dependencies import RuntimeDep, TenantDep
from strongroom.interfaces.web.admin import AdminDep, AdminWriterDep
from strongroom.interfaces.web.exports import exports_context, request_from_page
from strongroom.interfaces.web.fields import FORM_LABELS
from strongroom.interfaces.web.pages import render
from strongroom.interfaces.web.routing import WebRoute
from strongroom.tenancy import audit
from strongroom.tenancy.audit import AuditFilter
from strongroom.tenancy.events import ACTIONS, ANONYMOUS_NAME, OPERATOR_NAME
from strongroom.tenancy.time_zones import tenant_time_zone

router = APIRouter(route_class=WebRoute, include_in_schema=False)

FILTERS = audit.FILTER_NAMES
# The filter form's labels, which errors use in place of the query parameters.
FILTER_LABELS = {name: FORM_LABELS[name] for name in FILTERS}
PAGE_SIZE = 50


def _filter_of(request: Request, zone: zoneinfo.ZoneInfo) -> AuditFilter:
    values = {name: request.query_params.get(name) or None for name in FILTERS}
    return audit.parse_filter(zone, **values, names=FILTER_LABELS)


@router.get("/admin/audit")
def audit_page(request: Request, runtime: RuntimeDep, tenant: TenantDep, _admin: AdminDep) -> Response:
    chosen_values = {name: request.query_params.get(name, "") for name in FILTERS}
    context: dict[str, object] = {
        "title": "Audit trail",
        "section": "admin-audit",
        "actions": ACTIONS,
        "chosen": chosen_values,
        "events": [],
        "error": None,
        "older_url": None,
    }
    try:
        chosen = _filter_of(request, tenant_time_zone(tenant))
        cursor_text = request.query_params.get("cursor")
        after = audit.decode_cursor(cursor_text) if cursor_text else None
    except InvalidInput as error:
        context["error"] = error.detail
        return render(request, "admin_audit.html", context, 400)

    with runtime.stores.session(tenant) as session:
        page = audit.list_events(session, chosen, PAGE_SIZE, after)
        emails = {str(user.id): user.email for user in users.list_users(session)}
    context.update(exports_context(runtime, tenant, "audit"))
    filters = {name: value for name, value in chosen_values.items() if value}
    context["events"] = [_row(audit.event_json(row), emails) for row in page.events]
    context["export_query"] = urlencode(filters)
    if page.next_cursor is not None:
        query = urlencode({**filters, "cursor": audit.encode_cursor(page.next_cursor)})
        context["older_url"] = f"?{query}"
    return render(request, "admin_audit.html", context)


def _row(event: dict, emails: dict[str, str]) -> dict:
    """Add what a person reads more easily than ids: the actor's e-mail address where known."""
    actor = str(event["actor"])
    if actor in (OPERATOR_NAME, ANONYMOUS_NAME):
        label = actor
    else:
        label = emails.get(actor, actor)
    return {**event, "actor_label": label}


@router.get("/admin/audit/export")
def export_audit(
    request: Request, runtime: RuntimeDep, tenant: TenantDep, _admin: AdminDep
) -> Response:
    chosen = _filter_of(request, tenant_time_zone(tenant))
    headers = {"Content-Disposition": f'attachment; filename="audit-{tenant.slug}.jsonl"'}
    return StreamingResponse(
        export_lines(runtime, tenant, chosen), media_type=JSON_LINES, headers=headers
    )


# Exports as background jobs -------------------------------------------------------------


@router.post("/admin/audit/exports")
def request_audit_export(
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    admin: AdminWriterDep,
    action: Annotated[str, Form(max_length=64)] = "",
    actor: Annotated[str, Form(max_length=64)] = "",
    since: Annotated[str, Form(max_length=64)] = "",
    until: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    filters = {"action": action, "actor": actor, "since": since, "until": until}
    # Checked here first, so that errors name the fields by their labels.
    texts = {name: value or None for name, value in filters.items()}
    audit.parse_filter(tenant_time_zone(tenant), **texts, names=FILTER_LABELS)
    return request_from_page(request, runtime, tenant, admin.identity.user_id, "audit", filters)
