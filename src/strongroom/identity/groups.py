"""Groups of a tenant's users, which files and folders can be shared with.

Tenant admins create, rename and delete groups and choose their members;
the routes check the role, these functions only the data. Every look-up is
within the session's tenant, so another tenant's group or user is not found,
exactly like one that does not exist. Only active users become members.
Deleting a group deletes its memberships and the shares made with it, by the
foreign keys' ON DELETE CASCADE.
"""

from __future__ import annotations

import unicodedata
import uuid

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError as DatabaseIntegrityError

from strongroom.base.errors import AlreadyExists, InvalidInput, NotFound
from strongroom.base.logging import get_logger
from strongroom.identity.models import GroupMemberRow, GroupRow, UserRow
from strongroom.identity.users import access_active_user
from strongroom.storage.db import TenantSession

log = get_logger(__name__)

MAX_NAME_LENGTH = 200


def check_group_name(name: str) -> str:
    """Return the group name without surrounding blanks, or raise InvalidInput naming the fault."""
    cleaned = unicodedata.normalize("NFC", name).strip()
    if not cleaned:
        raise InvalidInput("a group needs a name; send a non-blank `name`")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidInput(
            f"the group name has {len(cleaned)} characters; use at most {MAX_NAME_LENGTH}"
        )
    hidden = next((c for c in cleaned if _is_hidden(c)), None)
    if hidden is not None:
        raise InvalidInput(
            f"the group name contains the control or direction-changing character "
            f"U+{ord(hidden):04X}, which can disguise a name; remove it"
        )
    return cleaned


# Bidirectional embeddings, overrides and isolates (Unicode Standard Annex 9), which make a
# name display differently from what it is.
DIRECTION_CONTROLS = frozenset({"LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"})


def _is_hidden(character: str) -> bool:
    return (
        unicodedata.category(character) in {"Cc", "Zl", "Zp"}
        or unicodedata.bidirectional(character) in DIRECTION_CONTROLS
    )


def create_group(session: TenantSession, name: str, user_id: uuid.UUID) -> GroupRow:
    group = GroupRow(id=uuid.uuid4(), name=check_group_name(name), created_by=user_id)
    session.add(group)
    _flush_unique_name(session, group.name)
    log.info("group_created", group_id=str(group.id))
    return group


def rename_group(session: TenantSession, group_id: uuid.UUID, name: str) -> GroupRow:
    group = access_group(session, group_id)
    group.name = check_group_name(name)
    _flush_unique_name(session, group.name)
    log.info("group_renamed", group_id=str(group.id))
    return group


def _flush_unique_name(session: TenantSession, name: str) -> None:
    duplicate = AlreadyExists(f"a group named {name!r} already exists; choose another name")
    try:
        # A savepoint, so that the caller's transaction survives the unique index's refusal.
        with session.begin_nested():
            session.flush()
    except DatabaseIntegrityError as exc:
        raise duplicate from exc


def delete_group(session: TenantSession, group_id: uuid.UUID) -> GroupRow:
    """Delete a group; the database deletes its memberships and shares with it."""
    group = access_group(session, group_id)
    session.execute(delete(GroupRow).where(GroupRow.id == group.id))
    log.info("group_deleted", group_id=str(group.id))
    return group


def get_group(session: TenantSession, group_id: uuid.UUID) -> GroupRow | None:
    return session.scalars(select(GroupRow).where(GroupRow.id == group_id)).first()


def access_group(session: TenantSession, group_id: uuid.UUID) -> GroupRow:
    group = get_group(session, group_id)
    if group is None:
        raise NotFound(f"no group has the id {group_id} in this tenant")
    return group


def list_groups(session: TenantSession) -> list[tuple[GroupRow, int]]:
    """Return every group of the tenant with its number of members, by name."""
    members = (
        select(GroupMemberRow.group_id, func.count().label("members"))
        .group_by(GroupMemberRow.group_id)
        .subquery()
    )
    query = (
        select(GroupRow, func.coalesce(members.c.members, 0))
        .outerjoin(members, members.c.group_id == GroupRow.id)
        .order_by(GroupRow.name)
    )
    return [(group, count) for group, count in session.execute(query)]


def list_members(session: TenantSession, group_id: uuid.UUID) -> list[UserRow]:
    return list(
        session.scalars(
            select(UserRow)
            .join(
                GroupMemberRow,
                (GroupMemberRow.tenant_id == UserRow.tenant_id)
                & (GroupMemberRow.user_id == UserRow.id),
            )
            .where(GroupMemberRow.group_id == group_id)
            .order_by(UserRow.email)
        )
    )


def add_member(session: TenantSession, group_id: uuid.UUID, user_id: uuid.UUID) -> GroupRow:
    """Add an active user to the group; adding a member again changes nothing."""
    group = access_group(session, group_id)
    user = access_active_user(session, user_id)
    if not is_member(session, group.id, user.id):
        session.add(GroupMemberRow(group_id=group.id, user_id=user.id))
        session.flush()
        log.info("group_member_added", group_id=str(group.id), user_id=str(user.id))
    return group


def remove_member(session: TenantSession, group_id: uuid.UUID, user_id: uuid.UUID) -> GroupRow:
    group = access_group(session, group_id)
    removed = session.execute(
        delete(GroupMemberRow).where(
            GroupMemberRow.group_id == group.id, GroupMemberRow.user_id == user_id
        )
    )
    if removed.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"the group {group.name!r} has no member with the id {user_id}")
    log.info("group_member_removed", group_id=str(group.id), user_id=str(user_id))
    return group


def is_member(session: TenantSession, group_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    found = session.scalar(
        select(GroupMemberRow.user_id).where(
            GroupMemberRow.group_id == group_id, GroupMemberRow.user_id == user_id
        )
    )
    return found is not None


def group_ids_of(session: TenantSession, user_id: uuid.UUID) -> list[uuid.UUID]:
    """Return the ids of the groups the user is a member of."""
    return list(
        session.scalars(select(GroupMemberRow.group_id).where(GroupMemberRow.user_id == user_id))
    )
