"""The admin page of usage: storage against the quota, counts, and the export of metered use.

The export button requests a `usage` export job for a month, as
`POST {base}/api/v1/admin/exports` does, and the page lists the tenant's
exports as the audit page does (web/exports.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from sqlalchemy import func, select
from starlette.responses import Response

from strongroom.drive.models import NodeRow, VersionRow
from strongroom.identity import users
from strongroom.interfaces.api.dependencies import RuntimeDep, TenantDep
from strongroom.interfaces.web.admin import AdminDep, AdminWriterDep
from strongroom.interfaces.web.exports import (
    USAGE_FORMATS,
    current_month,
    exports_context,
    request_from_page,
)
from strongroom.interfaces.web.pages import render
from strongroom.interfaces.web.routing import WebRoute
from strongroom.tenancy.usage import get_usage

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/admin/usage")
def usage_page(request: Request, runtime: RuntimeDep, tenant: TenantDep, _admin: AdminDep) -> Response:
    with runtime.stores.session(tenant) as session:
        used = get_usage(session)
        versions = session.scalar(select(func.count(VersionRow.id))) or 0
        trashed_nodes = select(func.count(NodeRow.id)).where(NodeRow.deleted_at.is_not(None))
        trashed = session.scalar(trashed_nodes) or 0
        everyone = users.list_users(session)
    quota = tenant.quota_bytes
    context: dict[str, object] = {
        "title": "Usage",
        "section": "admin-usage",
        "used": used,
        "quota": quota,
        "percent": min(100, round(used * 100 / quota)) if quota else None,
        "versions": versions,
        "trashed": trashed,
        "active_users": sum(1 for user in everyone if user.status == "active"),
        "disabled_users": sum(1 for user in everyone if user.status != "active"),
        "month": current_month(),
        "usage_formats": USAGE_FORMATS,
    }
    context.update(exports_context(runtime, tenant, "usage"))
    return render(request, "admin_usage.html", context)


@router.post("/admin/usage/exports")
def request_usage_export(
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    admin: AdminWriterDep,
    month: Annotated[str, Form(max_length=16)] = "",
    format: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    user_id = admin.identity.user_id
    filters = {"month": month}
    return request_from_page(request, runtime, tenant, user_id, "usage", filters, format or None)
