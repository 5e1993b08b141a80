"""Guest accounts: people outside the tenant, invited by e-mail, who reach only what is shared with them.

A guest is a user with the `guest` role and an expiry. The inviting user
gets an invitation secret to e-mail, stored as its SHA-256 like API tokens.
The guest opens it once, before it expires, to choose a password, then logs
in like anyone else. Past the guest's expiry, or once ended, the guest can
no longer log in and every session and token of theirs fails. The tenant
setting `guest_invites` decides whether members may invite or admins only, and
`guest_max_days` bounds how long a guest lasts.

What a guest may reach is decided in interfaces/api/confinement.py, which
the REST API's authentication and the web UI's session check both call.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError as DatabaseIntegrityError

from strongroom.base.errors import AlreadyExists, Forbidden, InvalidInput, NotFound
from strongroom.base.logging import get_logger
from strongroom.identity.models import ADMIN, GUEST, GuestInvitationRow, TokenRow, UserRow, as_utc
from strongroom.identity.passwords import hash_password
from strongroom.identity.tokens import hash_token
from strongroom.identity.users import check_room_for_user, get_user_by_email, normalise_email
from strongroom.identity.web_sessions import end_user_sessions
from strongroom.storage.db import TenantSession
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.events import Actor, Target, add_event
from strongroom.tenancy.models import utcnow
from strongroom.tenancy.settings import check_password

log = get_logger(__name__)

# An invitation lasts this long, or until the guest expires if that comes first.
INVITATION_LIFETIME = dt.timedelta(days=7)
MAX_NOTE_LENGTH = 1000
MAX_SECRET_LENGTH = 100
ENDED = "disabled"


@dataclass(frozen=True)
class Invitation:
    """A guest just invited, and the secret of their invitation link, which exists only here."""

    guest: UserRow
    secret: str
    expires_at: dt.datetime
    note: str


def check_may_invite(tenant: TenantInfo, inviter: UserRow) -> None:
    """Raise Forbidden unless the tenant's `guest_invites` setting lets this user invite guests."""
    if inviter.is_guest:
        raise Forbidden("guests cannot invite other guests; ask the person who invited you")
    if tenant.settings.guest_invites == "admins" and inviter.role != ADMIN:
        raise Forbidden(
            f"in tenant {tenant.slug!r} only admins invite guests (setting guest_invites is "
            "'admins'); ask a tenant admin to invite them, or to set guest_invites to 'members'"
        )


def check_guest_expiry(
    tenant: TenantInfo, requested: dt.datetime | None, now: dt.datetime
) -> dt.datetime:
    """Return when a new guest expires: the requested moment, or the longest the tenant allows."""
    longest = now + dt.timedelta(days=tenant.settings.guest_max_days)
    if requested is None:
        return longest
    moment = as_utc(requested)
    if moment <= now:
        raise InvalidInput(
            f"expires_at {moment.isoformat()} is in the past; give a moment in the future"
        )
    if moment > longest:
        raise InvalidInput(
            f"expires_at {moment.isoformat()} is more than {tenant.settings.guest_max_days} days "
            f"away, the longest a guest lasts in tenant {tenant.slug!r}; give {longest.isoformat()} "
            "or earlier, or ask an admin to raise the setting guest_max_days"
        )
    return moment


def invite_guest(
    session: TenantSession,
    tenant: TenantInfo,
    inviter: UserRow,
    email: str,
    actor: Actor,
    expires_at: dt.datetime | None = None,
    note: str = "",
) -> Invitation:
    """Create a guest and an invitation for them; the caller e-mails the secret after commit.

    A guest who expired or was ended comes back with the new expiry, and
    chooses a new password through the new invitation. The `guest_invited`
    event names the guest by id, never by address.
    """
    check_may_invite(tenant, inviter)
    address = normalise_email(email)
    if len(note) > MAX_NOTE_LENGTH:
        raise InvalidInput(f"the note has {len(note)} characters; use at most {MAX_NOTE_LENGTH}")
    now = utcnow()
    guest_expiry = check_guest_expiry(tenant, expires_at, now)
    guest = get_user_by_email(session, address)
    renewed = guest is not None
    if guest is None:
        check_room_for_user(session, tenant)
        guest = UserRow(id=uuid.uuid4(), email=address, display_name="", role=GUEST)
        session.add(guest)
    else:
        _check_renewable(guest, now)
        # Nothing the guest held before comes back: their old password, sessions and tokens.
        _close_access(session, guest.id, now)
    guest.password_hash = None
    guest.status = "active"
    guest.expires_at = guest_expiry
    guest.invited_by = inviter.id
    try:
        session.flush()
    except DatabaseIntegrityError as exc:
        # Another request invited or created the same address since the look-up above.
        raise AlreadyExists(f"{address!r} is a user of this tenant already") from exc
    secret, invitation = _new_invitation(guest, inviter.id, note, now)
    session.add(invitation)
    session.flush()
    add_event(
        session,
        tenant,
        "guest_invited",
        actor,
        target=Target("user", guest.id),
        new={
            "expires_at": guest_expiry.isoformat(),
            "invitation_expires_at": as_utc(invitation.expires_at).isoformat(),
            "renewed": renewed,
        },
    )
    return Invitation(guest=guest, secret=secret, expires_at=invitation.expires_at, note=note)


def _check_renewable(user: UserRow, now: dt.datetime) -> None:
    """Raise AlreadyExists unless the user is a guest who expired or was ended, and may come back."""
    if not user.is_guest:
        raise AlreadyExists(
            f"{user.email!r} is a user of this tenant already; share with that user directly"
        )
    if user.is_usable(now):
        raise AlreadyExists(
            f"{user.email!r} is a guest of this tenant already, until "
            f"{as_utc(user.expires_at).isoformat()}; share with them directly, or end the guest "  # type: ignore[arg-type]
            "with DELETE /api/v1/guests/{id} and invite them again"
        )


def _new_invitation(
    guest: UserRow, inviter_id: uuid.UUID, note: str, now: dt.datetime
) -> tuple[str, GuestInvitationRow]:
    secret = secrets.token_urlsafe(32)
    guest_expiry = as_utc(guest.expires_at) if guest.expires_at else now + INVITATION_LIFETIME
    row = GuestInvitationRow(
        id=uuid.uuid4(),
        user_id=guest.id,
        token_hash=hash_token(secret),
        invited_by=inviter_id,
        note=note,
        created_at=now,
        expires_at=min(now + INVITATION_LIFETIME, guest_expiry),
    )
    return secret, row


def access_invitation(session: TenantSession, secret: str) -> tuple[GuestInvitationRow, UserRow]:
    """Return an open invitation and its guest, or raise NotFound.

    An unknown, used or expired invitation, one of an ended or expired guest,
    and one of another tenant all fail with the same message.
    """
    missing = NotFound(
        "this invitation link is unknown, used already or expired; ask the person who invited "
        "you to send a new one"
    )
    if not secret or len(secret) > MAX_SECRET_LENGTH:
        raise missing
    found = session.execute(
        select(GuestInvitationRow, UserRow)
        .join(
            UserRow,
            (UserRow.tenant_id == GuestInvitationRow.tenant_id)
            & (UserRow.id == GuestInvitationRow.user_id),
        )
        .where(GuestInvitationRow.token_hash == hash_token(secret))
    ).first()
    if found is None:
        raise missing
    invitation, guest = found
    now = utcnow()
    if invitation.used_at is not None or as_utc(invitation.expires_at) <= now:
        raise missing
    if not guest.is_usable(now):
        raise missing
    return invitation, guest


def accept_invitation(
    session: TenantSession, tenant: TenantInfo, secret: str, password: str, address: str | None
) -> UserRow:
    """Set the guest's password through the invitation, which can then not be used again.

    `address` is the client's IP address, for the `guest_invitation_accepted` event.
    """
    invitation, guest = access_invitation(session, secret)
    check_password(tenant.settings.password_policy, password)
    # The update is conditional, so two concurrent acceptances cannot both succeed.
    claimed = session.execute(
        update(GuestInvitationRow)
        .where(GuestInvitationRow.id == invitation.id, GuestInvitationRow.used_at.is_(None))
        .values(used_at=utcnow())
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFound("this invitation link was used already; log in with the password you chose")
    guest.password_hash = hash_password(password)
    session.flush()
    add_event(
        session,
        tenant,
        "guest_invitation_accepted",
        Actor(str(guest.id), address),
        target=Target("user", guest.id),
        new={"invitation_id": str(invitation.id)},
    )
    return guest


def list_guests(session: TenantSession, invited_by: uuid.UUID | None = None) -> list[UserRow]:
    """Return the tenant's guests, or only those `invited_by` invited, newest first."""
    query = select(UserRow).where(UserRow.role == GUEST).order_by(UserRow.created_at.desc())
    if invited_by is not None:
        query = query.where(UserRow.invited_by == invited_by)
    return list(session.scalars(query))


def access_guest(session: TenantSession, manager: UserRow | None, guest_id: uuid.UUID) -> UserRow:
    """Return a guest the manager may manage, or raise NotFound.

    An admin manages every guest and a member the guests they invited. A
    manager of None is the operator at the command line, who manages every guest.
    """
    query = select(UserRow).where(UserRow.id == guest_id, UserRow.role == GUEST)
    if manager is not None and manager.role != ADMIN:
        query = query.where(UserRow.invited_by == manager.id)
    guest = session.scalars(query).first()
    if guest is None:
        whose = "guest you invited" if manager is not None and manager.role != ADMIN else "guest"
        raise NotFound(f"no {whose} has the id {guest_id}")
    return guest


def end_guest(session: TenantSession, tenant: TenantInfo, guest: UserRow, actor: Actor) -> UserRow:
    """End a guest found by `access_guest` at once: no more logins, sessions, tokens or invitation.

    The account stays, disabled and expired, so that shares and records that
    name it still name someone. Token caches of other replicas drop a token
    within their lifetime; the caller clears this process's cache.
    """
    now = utcnow()
    before = guest_state(guest, now)
    guest.status = ENDED
    if guest.expires_at is None or as_utc(guest.expires_at) > now:
        guest.expires_at = now
    _close_access(session, guest.id, now)
    session.flush()
    add_event(
        session,
        tenant,
        "guest_ended",
        actor,
        target=Target("user", guest.id),
        old={"state": before},
        new={"state": guest_state(guest, now)},
    )
    return guest


def _close_access(session: TenantSession, guest_id: uuid.UUID, now: dt.datetime) -> None:
    """End the guest's web sessions, revoke their tokens and close their open invitations."""
    end_user_sessions(session, guest_id)
    session.execute(
        update(TokenRow)
        .where(TokenRow.user_id == guest_id, TokenRow.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    session.execute(
        update(GuestInvitationRow)
        .where(GuestInvitationRow.user_id == guest_id, GuestInvitationRow.used_at.is_(None))
        .values(expires_at=now)
    )


def guest_state(guest: UserRow, now: dt.datetime | None = None) -> str:
    """Return `invited` (no password yet), `active`, `expired` or `ended`."""
    if guest.status != "active":
        return "ended"
    if not guest.is_usable(now):
        return "expired"
    return "active" if guest.password_hash else "invited"
