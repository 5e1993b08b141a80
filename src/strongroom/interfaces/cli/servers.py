"""`strongroom server ...`: the database servers that schema and database tenants can go to."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from strongroom.interfaces.cli.main import open_runtime, out, reports_errors, server_app
from strongroom.tenancy import servers


@server_app.command("add")
@reports_errors
def add(
    name: Annotated[str, typer.Argument(help="1 to 63 lowercase letters, digits and hyphens.")],
    url: Annotated[
        str,
        typer.Argument(
            help="postgresql://USER:PASSWORD@HOST:PORT/DB; DB contains the schema tenants, and "
            "USER needs the right to create databases for database tenants."
        ),
    ],
) -> None:
    """Register a PostgreSQL server, after checking that it answers."""
    runtime = open_runtime()
    server = servers.add_server(runtime.catalog, name, url)
    out.print(f"added server {server.name} at {server.masked_url}")


@server_app.command("list")
@reports_errors
def list_all() -> None:
    """List the registered servers, their URLs without passwords, and their tenant counts."""
    runtime = open_runtime()
    table = Table("name", "url", "tenants")
    for server, tenants in servers.list_servers(runtime.catalog):
        table.add_row(server.name, server.masked_url, str(tenants))
    out.print(table)


@server_app.command("remove")
@reports_errors
def remove(name: str) -> None:
    """Unregister a server that holds no tenant."""
    runtime = open_runtime()
    servers.remove_server(runtime.catalog, name)
    out.print(f"removed server {name}")
