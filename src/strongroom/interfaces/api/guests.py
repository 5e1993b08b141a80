"""Guests of the tenant: invite one by e-mail, list them, end one.

Members invite guests when the tenant's `guest_invites` setting allows it,
admins always. Admins list and end every guest, members the guests they
invited. The invitation e-mail carries a link to `{base}/invite/{token}`,
where the guest chooses a password; the token is in that e-mail only.
"""

from __future__ import annotations

import datetime as dt
import uuid

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from strongroom.base.dates import format_minute
from strongroom.identity import guests
from strongroom.identity.models import UserRow
from strongroom.identity.users import access_user
from strongroom.interfaces.api.bodies import RequestBody
from strongroom.interfaces.api.dependencies import (
    API_PREFIX,
    PrincipalDep,
    RuntimeDep,
    TenantDep,
    actor_of,
    parse_object_id,
    require_module,
)
from strongroom.interfaces.api.schemas import utc
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.modules import GUESTS

router = APIRouter(prefix=API_PREFIX, tags=["guests"], dependencies=[require_module(GUESTS)])


class GuestCreate(RequestBody):
    email: str = Field(max_length=320, description="where the invitation goes")
    expires_at: dt.datetime | None = Field(
        default=None,
        description="when the guest account ends, with a UTC offset; at most the tenant's "
        "guest_max_days away, which is also the default",
    )
    note: str = Field(default="", max_length=1000, description="a few words for the invitation e-mail")


class GuestOut(BaseModel):
    id: uuid.UUID
    email: str
    state: str = Field(description="invited (no password yet), active, expired or ended")
    expires: dt.datetime | None
    invited_by: uuid.UUID | None
    created: dt.datetime


class GuestInvited(GuestOut):
    invitation_expires: dt.datetime = Field(description="when the link in the e-mail stops working")
    invitation_mailed: bool = Field(
        description="false when the server has no mail server (STRONGROOM_SMTP_HOST), so the "
        "guest gets no link and cannot log in; ask the operator to set one up"
    )


class GuestListing(BaseModel):
    items: list[GuestOut]


def _guest_out(guest: UserRow) -> GuestOut:
    return GuestOut(
        id=guest.id,
        email=guest.email,
        state=guests.guest_state(guest),
        expires=utc(guest.expires_at) if guest.expires_at else None,
        invited_by=guest.invited_by,
        created=utc(guest.created_at),
    )


@router.post("/guests", response_model=GuestInvited, status_code=201, summary="Invite a guest by e-mail")
def invite_guest(
    body: GuestCreate,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    principal: PrincipalDep,
) -> GuestInvited:
    with runtime.stores.session(tenant, write=True) as session:
        inviter = access_user(session, principal.user_id)
        invitation = guests.invite_guest(
            session,
            tenant,
            inviter,
            body.email,
            actor_of(request, principal.user_id),
            body.expires_at,
            body.note.strip(),
        )
        out = _guest_out(invitation.guest)
        inviter_name = inviter.display_name or inviter.email
    # Sent after the commit, so that the link in the e-mail always works.
    _send_invitation(runtime, tenant, request, invitation, inviter_name)
    # The link stays out of the reply, because the first person to open it becomes the guest.
    return GuestInvited(
        **out.model_dump(),
        invitation_expires=utc(invitation.expires_at),
        invitation_mailed=bool(runtime.mailer.host),
    )


def _send_invitation(
    runtime: Runtime,
    tenant: TenantInfo,
    request: Request,
    invitation: guests.Invitation,
    inviter_name: str,
) -> None:
    link = f"{str(request.base_url).rstrip('/')}/invite/{invitation.secret}"
    account_ends = _moment(invitation.guest.expires_at)
    link_ends = _moment(invitation.expires_at)
    lines = [
        f"{inviter_name} invited you as a guest of {tenant.name}.",
        "",
        f"Open this link to choose your password. It works once, until {link_ends}:",
        "",
        f"  {link}",
        "",
        f"Your guest account lasts until {account_ends}. You will see what is shared with you.",
    ]
    if invitation.note:
        lines += ["", f"{inviter_name} wrote:", "", invitation.note]
    message = runtime.mailer.compose(
        invitation.guest.email, f"Invitation to {tenant.name}", "\n".join(lines) + "\n"
    )
    runtime.mailer.send_later(message, purpose="guest_invitation")


def _moment(moment: dt.datetime | None) -> str:
    return f"{format_minute(utc(moment))} UTC" if moment else "further notice"


@router.get("/guests", response_model=GuestListing, summary="List guests: all for admins, my own for members")
def list_guests(runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep) -> GuestListing:
    with runtime.stores.session(tenant) as session:
        found = guests.list_guests(session, None if principal.is_admin else principal.user_id)
        return GuestListing(items=[_guest_out(guest) for guest in found])


@router.delete("/guests/{guest_id}", response_model=GuestOut, summary="End a guest at once")
def end_guest(
    guest_id: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    principal: PrincipalDep,
) -> GuestOut:
    with runtime.stores.session(tenant, write=True) as session:
        manager = access_user(session, principal.user_id)
        guest = guests.access_guest(session, manager, parse_object_id(guest_id, "guest"))
        guests.end_guest(session, tenant, guest, actor_of(request, principal.user_id))
        out = _guest_out(guest)
    # Ending is rare, so dropping every cached token costs less than indexing them by user.
    runtime.tokens.clear()
    return out
