"""Export jobs in the web UI: the list of exports, its download and delete actions.

The audit page and the usage page each have a button that requests an
export of their kind, and both show the same list of the tenant's exports.
The list polls through htmx while an export is unfinished, and its
download and delete actions return to the page the admin came from.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import Response

from strongroom.base.errors import InvalidInput
from strongroom.exports import building, requests
from strongroom.exports.kinds import KINDS
from strongroom.exports.models import QUEUED, RUNNING
from strongroom.interfaces.api.dependencies import RuntimeDep, TenantDep, actor_of, parse_object_id
from strongroom.interfaces.api.exports import send_export
from strongroom.interfaces.web.admin import AdminDep, AdminWriterDep
from strongroom.interfaces.web.pages import render
from strongroom.interfaces.web.routing import WebRoute, redirect
from strongroom.interfaces.web.security import base_path
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.models import utcnow

router = APIRouter(route_class=WebRoute, include_in_schema=False)

# The admin pages that show the list of exports, which its actions return to.
PAGES = ("audit", "usage")
USAGE_FORMATS = tuple(kind_format.name for kind_format in KINDS["usage"].formats)


def check_page(page: str) -> str:
    if page not in PAGES:
        raise InvalidInput(f"page {page!r} is not a page with exports; use one of: {', '.join(PAGES)}")
    return page


def exports_context(runtime: Runtime, tenant: TenantInfo, page: str) -> dict[str, object]:
    """Return what `_exports.html` shows: the exports, their status now, and the page it is on."""
    with runtime.stores.session(tenant) as session:
        exports = requests.list_exports(session)
    now = utcnow()
    return {
        "exports": exports,
        "now": now,
        "exports_page": page,
        "exports_pending": any(export.status_at(now) in (QUEUED, RUNNING) for export in exports),
        "retention_days": f"{runtime.settings.export_retention_days:g}",
        "max_held": requests.MAX_HELD,
    }


def request_from_page(
    request: Request,
    runtime: Runtime,
    tenant: TenantInfo,
    user_id: uuid.UUID,
    page: str,
    filters: Mapping[str, str],
    format_name: str | None = None,
) -> Response:
    """Request an export of the page's kind; return the list for htmx, else go back to the page."""
    with runtime.stores.session(tenant, write=True) as session:
        export = requests.request_export(
            session,
            tenant,
            actor_of(request, user_id),
            user_id,
            page,
            {name: value for name, value in filters.items() if value},
            format_name,
            runtime.settings.export_max_held_bytes,
        )
    building.enqueue_build(runtime, tenant, export.id)
    if request.headers.get("hx-request") == "true":
        return render(request, "_exports.html", exports_context(runtime, tenant, page))
    return redirect(request, f"{base_path(request)}/admin/{page}?done=export-requested")


def current_month(now: dt.datetime | None = None) -> str:
    """Return the UTC month of `now` as YYYY-MM, the usage page's default month to export."""
    return (now or utcnow()).astimezone(dt.UTC).strftime("%Y-%m")


@router.get("/admin/exports")
def exports_list(
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    _admin: AdminDep,
    page: Annotated[str, Query(max_length=16)] = "audit",
) -> Response:
    """Render the list of exports alone, for htmx to swap into the page it is on."""
    return render(request, "_exports.html", exports_context(runtime, tenant, check_page(page)))


@router.api_route("/admin/exports/{export_id}/content", methods=["GET", "HEAD"])
async def download_export(
    export_id: str, request: Request, runtime: RuntimeDep, tenant: TenantDep, admin: AdminDep
) -> Response:
    target = parse_object_id(export_id, "export")
    actor = actor_of(request, admin.identity.user_id)
    return await send_export(runtime, tenant, target, actor, send_body=request.method != "HEAD")


@router.post("/admin/exports/{export_id}/delete")
def delete_export(
    export_id: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    admin: AdminWriterDep,
    page: Annotated[str, Form(max_length=16)] = "audit",
) -> Response:
    target = parse_object_id(export_id, "export")
    back = check_page(page)
    with runtime.stores.session(tenant, write=True) as session:
        requests.delete_export(session, tenant, actor_of(request, admin.identity.user_id), target)
    requests.delete_content(runtime, tenant, target)
    return redirect(request, f"{base_path(request)}/admin/{back}?done=export-deleted")
