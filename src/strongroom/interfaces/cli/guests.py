"""`strongroom guest ...`: list a tenant's guests and end one, as the API's admins do.

Invitations are made through the API and the web UI: the invitation e-mail
carries a link to the tenant's address, which a command does not know.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import typer
from rich.table import Table

from strongroom.base.errors import NotFound
from strongroom.identity import guests
from strongroom.interfaces.cli.main import guest_app, open_runtime, out, reports_errors
from strongroom.tenancy.events import OPERATOR


@guest_app.command("list")
@reports_errors
def list_all(slug: Annotated[str, typer.Argument(help="The tenant.")]) -> None:
    """List a tenant's guests, newest first, with their state and expiry."""
    runtime = open_runtime()
    tenant = runtime.catalog.get_tenant(slug)
    with runtime.stores.session(tenant) as session:
        found = guests.list_guests(session)
    table = Table("email", "state", "expires", "invited by", "id")
    for guest in found:
        table.add_row(
            guest.email,
            guests.guest_state(guest),
            f"{guest.expires_at:%Y-%m-%d %H:%M}" if guest.expires_at else "never",
            str(guest.invited_by) if guest.invited_by else "",
            str(guest.id),
        )
    out.print(table)


@guest_app.command("end")
@reports_errors
def end(
    slug: Annotated[str, typer.Argument(help="The tenant.")],
    guest_id: Annotated[str, typer.Argument(help="The guest's id, from `strongroom guest list`.")],
) -> None:
    """End a guest at once: their sessions, tokens and open invitation stop working."""
    try:
        parsed = uuid.UUID(guest_id)
    except ValueError:
        raise NotFound(
            f"no guest has the id {guest_id!r}; see `strongroom guest list {slug}`"
        ) from None
    runtime = open_runtime()
    tenant = runtime.catalog.get_tenant(slug)
    with runtime.stores.session(tenant, write=True) as session:
        guest = guests.access_guest(session, None, parsed)
        guests.end_guest(session, tenant, guest, OPERATOR)
        email = guest.email
    out.print(f"ended guest {email} of tenant {slug} ({guest_id})")
