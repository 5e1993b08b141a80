"""`strongroom app-password ...`: the app passwords that WebDAV clients log in with."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer
from rich.table import Table

from strongroom.base.dates import format_minute
from strongroom.base.errors import NotFound
from strongroom.identity import app_passwords
from strongroom.identity.users import access_user_by_email
from strongroom.interfaces.cli.main import app_password_app, open_runtime, out, reports_errors
from strongroom.tenancy.events import OPERATOR, Target, add_event


@app_password_app.command("create")
@reports_errors
def create(
    slug: Annotated[str, typer.Argument(help="The tenant.")],
    email: Annotated[str, typer.Argument(help="The user who logs in with it.")],
    name: Annotated[str, typer.Option(help="A label to recognise it by, such as the device.")] = "",
) -> None:
    """Create an app password and print it, alone, on standard output."""
    runtime = open_runtime()
    tenant = runtime.catalog.get_tenant(slug)
    with runtime.stores.session(tenant, write=True) as session:
        user = access_user_by_email(session, email)
        row, secret = app_passwords.create_app_password(session, user, name)
        add_event(
            session,
            tenant,
            "app_password_created",
            OPERATOR,
            target=Target("app_password", row.id),
            new=app_passwords.audited(row),
        )
    print(secret)


@app_password_app.command("list")
@reports_errors
def list_all(
    slug: str,
    email: Annotated[str | None, typer.Argument(help="Only this user's app passwords.")] = None,
) -> None:
    """List a tenant's app passwords (never their secrets)."""
    runtime = open_runtime()
    tenant = runtime.catalog.get_tenant(slug)
    with runtime.stores.session(tenant) as session:
        user_id = access_user_by_email(session, email).id if email else None
        rows = app_passwords.list_app_passwords(session, user_id)
    table = Table("id", "user id", "name", "created", "last used", "revoked")
    for row in rows:
        table.add_row(
            str(row.id),
            str(row.user_id),
            row.name,
            format_minute(row.created_at),
            format_minute(row.last_used_at) if row.last_used_at else "never",
            format_minute(row.revoked_at) if row.revoked_at else "",
        )
    out.print(table)


@app_password_app.command("revoke")
@reports_errors
def revoke(slug: str, app_password_id: str) -> None:
    """Revoke an app password by its id; the next request with it fails."""
    try:
        parsed = uuid.UUID(app_password_id)
    except ValueError:
        raise NotFound(
            f"no app password has the id {app_password_id!r}; "
            f"see `strongroom app-password list {slug}`"
        ) from None
    runtime = open_runtime()
    tenant = runtime.catalog.get_tenant(slug)
    with runtime.stores.session(tenant, write=True) as session:
        row = app_passwords.revoke_app_password(session, parsed, user_id=None)
        add_event(
            session,
            tenant,
            "app_password_revoked",
            OPERATOR,
            target=Target("app_password", row.id),
            old=app_passwords.audited(row),
        )
    out.print(f"revoked app password {app_password_id}")
