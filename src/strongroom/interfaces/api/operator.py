"""The operator API under `/api/v1/operator/`, on the platform's own URL with an operator token.

It returns platform figures, never a tenant's contents. Its routes are left
out of the OpenAPI document, which describes the API under a tenant's base URL.
"""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from strongroom.base import log_context
from strongroom.base.errors import InvalidInput, NotAuthenticated, NotFound
from strongroom.interfaces.api.dependencies import API_PREFIX, RuntimeDep
from strongroom.interfaces.api.middleware import tenant_of_scope
from strongroom.tenancy.models import OperatorTokenRow
from strongroom.tenancy.operators import authenticate_operator
from strongroom.tenancy.usage_report import FORMATS, as_csv, as_document, monthly_usage

router = APIRouter(prefix=f"{API_PREFIX}/operator", include_in_schema=False)


async def require_operator(request: Request, runtime: RuntimeDep) -> OperatorTokenRow:
    """Authenticate an operator token. Under a tenant's URL the operator API is not found."""
    if tenant_of_scope(request.scope) is not None:
        raise NotFound(
            "the operator API is served on the platform's own URL, not under a tenant's; "
            "call /api/v1/operator/... without /t/{slug} or a tenant's host name"
        )
    scheme, _, secret = (request.headers.get("authorization") or "").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise NotAuthenticated(
            "send an operator token as `Authorization: Bearer TOKEN`; "
            "`strongroom operator token create NAME` makes one"
        )
    operator = await anyio.to_thread.run_sync(authenticate_operator, runtime.engine, secret)
    log_context.bind(actor=f"operator {operator.id}")
    return operator


OperatorDep = Annotated[OperatorTokenRow, Depends(require_operator)]


@router.get("/usage")
def usage(
    runtime: RuntimeDep,
    _operator: OperatorDep,
    month: Annotated[str, Query(description="The month, YYYY-MM, in UTC.")],
    tenant: Annotated[str | None, Query(description="Only this tenant's slug.")] = None,
    output: Annotated[str, Query(alias="format", description="json or csv.")] = "json",
) -> Response:
    """Return a month's usage per tenant slug, as `strongroom usage` prints it."""
    if output not in FORMATS:
        raise InvalidInput(f"format {output!r} is not offered; use json or csv")
    usages = monthly_usage(runtime.catalog, month, tenant)
    if output == "csv":
        return Response(as_csv(month, usages), media_type="text/csv; charset=utf-8")
    return JSONResponse(as_document(usages))

