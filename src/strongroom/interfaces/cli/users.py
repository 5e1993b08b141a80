"""`strongroom user ...` and `strongroom token ...`: accounts and API tokens of a tenant."""

from __future__ import annotations

import sys
import uuid
from typing import Annotated, Optional

import typer
from rich.table import Table

from strongroom.base.dates import format_date, format_minute
from strongroom.base.errors import InvalidInput, NotFound
from strongroom.drive.files import create_root
from strongroom.identity import tokens
from strongroom.identity.passwords import generate_password
from strongroom.identity.users import access_user_by_email, create_user, list_users
from strongroom.interfaces.cli.main import (
    err,
    open_runtime,
    out,
    reports_errors,
    token_app,
    user_app,
)
from strongroom.tenancy.events import OPERATOR, Target, add_event


@user_app.command("create")
@reports_errors
def create(
    slug: Annotated[str, typer.Argument(help="The tenant.")],
    email: Annotated[str, typer.Argument(help="The user's e-mail address, unique in the tenant.")],
    role: Annotated[str, typer.Option(help="admin or member.")] = "member",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a user and the user's drive; without --password-stdin a password is generated and printed once."""
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else ""
    if password_stdin and not password:
        raise InvalidInput("standard input held no password; pipe one in, or drop --password-stdin")

    runtime = open_runtime()
    tenant = runtime.catalog.get_tenant(slug)
    if not password_stdin:
        password = generate_password(tenant.settings.password_policy)
    with runtime.stores.session(tenant, write=True) as session:
        user = create_user(session, email, password, role=role, tenant=tenant)
        create_root(session, user.id)
        add_event(
            session,
            tenant,
            "user_created",
            OPERATOR,
            target=Target("user", user.id),
            new={"role": user.role, "status": user.status},
        )
    out.print(f"created {user.role} {user.email} in tenant {slug} ({user.id})")
    if not password_stdin:
        out.print(f"password: {password}")
        err.print("the password is shown only this once")


@user_app.command("list")
@reports_errors
def list_all(slug: str) -> None:
    """List a tenant's users."""
    runtime = open_runtime()
    tenant = runtime.catalog.get_tenant(slug)
    with runtime.stores.session(tenant) as session:
        users = list_users(session)
    table = Table("email", "role", "status", "id")
    for user in users:
        table.add_row(user.email, user.role, user.status, str(user.id))
    out.print(table)


@token_app.command("create")
@reports_errors
def create_token(
    slug: Annotated[str, typer.Argument(help="The tenant.")],
    email: Annotated[str, typer.Argument(help="The user the token acts as.")],
    name: Annotated[str, typer.Option(help="A label to recognise the token by.")] = "",
    expires: Annotated[
        Optional[int], typer.Option(help="Days until the token expires; default never.")
    ] = None,
) -> None:
    """Create an API token and print it, alone, on standard output."""
    runtime = open_runtime()
    tenant = runtime.catalog.get_tenant(slug)
    with runtime.stores.session(tenant, write=True) as session:
        user = access_user_by_email(session, email)
        row, secret = tokens.create_token(session, user, name, expires)
        add_event(
            session,
            tenant,
            "token_created",
            OPERATOR,
            target=Target("token", row.id),
            new=tokens.audited(row),
        )
    print(secret)


@token_app.command("list")
@reports_errors
def list_tokens(
    slug: str,
    email: Annotated[Optional[str], typer.Argument(help="Only this user's tokens.")] = None,
) -> None:
    """List a tenant's API tokens (never their secrets)."""
    runtime = open_runtime()
    tenant = runtime.catalog.get_tenant(slug)
    with runtime.stores.session(tenant) as session:
        user_id = access_user_by_email(session, email).id if email else None
        rows = tokens.list_tokens(session, user_id)
    table = Table("id", "name", "prefix", "created", "expires", "last used", "revoked")
    for row in rows:
        table.add_row(
            str(row.id),
            row.name,
            row.prefix + "…",
            format_minute(row.created_at),
            format_date(row.expires_at) if row.expires_at else "never",
            format_minute(row.last_used_at) if row.last_used_at else "never",
            format_minute(row.revoked_at) if row.revoked_at else "",
        )
    out.print(table)


@token_app.command("revoke")
@reports_errors
def revoke(slug: str, token_id: str) -> None:
    """Revoke a token by its id; it stops working at once."""
    try:
        parsed = uuid.UUID(token_id)
    except ValueError:
        raise NotFound(f"no token has the id {token_id!r}; see `strongroom token list {slug}`") from None
    runtime = open_runtime()
    tenant = runtime.catalog.get_tenant(slug)
    with runtime.stores.session(tenant, write=True) as session:
        row = tokens.revoke_token(session, parsed, user_id=None)
        add_event(
            session,
            tenant,
            "token_revoked",
            OPERATOR,
            target=Target("token", row.id),
            old=tokens.audited(row),
        )
    out.print(f"revoked token {token_id}")
