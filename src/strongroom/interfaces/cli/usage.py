"""`strongroom usage`: a month's metered use per tenant, for billing."""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated

import typer

from strongroom.interfaces.cli.main import app, open_runtime, out, reports_errors
from strongroom.tenancy.usage_report import as_csv, as_document, monthly_usage, parse_month


class Format(str, Enum):
    json = "json"
    csv = "csv"


@app.command()
@reports_errors
def usage(
    month: Annotated[str, typer.Option(help="The month to report, YYYY-MM, in UTC.")],
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's slug.")] = None,
    output: Annotated[
        Format, typer.Option("--format", help="json: one document by tenant slug; csv: a table.")
    ] = Format.json,
) -> None:
    """Print requests, bytes in and out, storage byte-hours and active users per tenant."""
    parse_month(month)
    runtime = open_runtime()
    usages = monthly_usage(runtime.catalog, month, tenant)
    if output is Format.csv:
        print(as_csv(month, usages), end="")
        return
    out.print(json.dumps(as_document(usages), indent=2), markup=False)
