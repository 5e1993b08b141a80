"""`strongroom operator token ...`: bearer tokens for the operator API."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer
from rich.table import Table

from strongroom.base.dates import format_minute
from strongroom.base.errors import NotFound
from strongroom.interfaces.cli.main import open_runtime, operator_token_app, out, reports_errors
from strongroom.tenancy import operators


@operator_token_app.command("create")
@reports_errors
def create(
    name: Annotated[str, typer.Argument(help="Who or what uses the token, such as billing.")],
) -> None:
    """Create an operator token and print it, alone, on standard output."""
    runtime = open_runtime()
    _row, secret = operators.create_operator_token(runtime.engine, name)
    print(secret)


@operator_token_app.command("list")
@reports_errors
def list_all() -> None:
    """List the operator tokens (never their secrets)."""
    runtime = open_runtime()
    table = Table("id", "name", "prefix", "created", "last used", "revoked")
    for row in operators.list_operator_tokens(runtime.engine):
        table.add_row(
            str(row.id),
            row.name,
            row.prefix + "…",
            format_minute(row.created_at),
            format_minute(row.last_used_at) if row.last_used_at else "never",
            format_minute(row.revoked_at) if row.revoked_at else "",
        )
    out.print(table)


@operator_token_app.command("revoke")
@reports_errors
def revoke(token_id: str) -> None:
    """Revoke an operator token by its id; it stops working at once."""
    try:
        parsed = uuid.UUID(token_id)
    except ValueError:
        raise NotFound(
            f"no operator token has the id {token_id!r}; see `strongroom operator token list`"
        ) from None
    runtime = open_runtime()
    operators.revoke_operator_token(runtime.engine, parsed)
    out.print(f"revoked operator token {token_id}")
