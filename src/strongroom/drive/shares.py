"""Internal shares: a file or folder of one user's drive, shared with a user or a group.

A share names one node, so it follows the node when its owner moves or
renames it, and names its recipient: an active user of the tenant or a group
of it, never both. It grants `read` or `write`. A recipient reaches the
shared item only while the share exists and the item and every folder above
it are out of the trash. So revoking a share, removing a member from its
group or trashing the item stops access with the next request. Recipients
address paths below the shared item, never above it.

Every look-up is within the session's tenant, so an id of another tenant is
not found, exactly like an id that does not exist. Like the other drive
modules, every function takes a session bound to the tenant and leaves the
commit to the caller.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.exc import IntegrityError as DatabaseIntegrityError

from strongroom.base.errors import AlreadyExists, Forbidden, InvalidInput, NotFound
from strongroom.base.logging import get_logger
from strongroom.drive.files import Names, access_node, ancestors, is_trashed
from strongroom.drive.models import PERMISSIONS, WRITE, NodeRow, ShareRow
from strongroom.drive.paths import join_path
from strongroom.identity.groups import access_group, group_ids_of
from strongroom.identity.models import GroupRow, UserRow
from strongroom.identity.users import ACTIVE, access_active_user
from strongroom.storage.db import TenantSession
from strongroom.tenancy.models import utcnow

log = get_logger(__name__)


@dataclass(frozen=True)
class Recipient:
    """The user or the group of the tenant that a share is for, by id."""

    user_id: uuid.UUID | None = None
    group_id: uuid.UUID | None = None

    def __post_init__(self) -> None:
        if (self.user_id is None) == (self.group_id is None):
            raise InvalidInput("a share is for one user or one group; send `user_id` or `group_id`")


@dataclass(frozen=True)
class SharedItem:
    """A share as its recipient reaches it: the node it names and the drive that node is in."""

    share: ShareRow
    node: NodeRow

    @property
    def owner_id(self) -> uuid.UUID:
        return self.share.owner_id

    @property
    def writable(self) -> bool:
        return self.share.permission == WRITE

    def check_writable(self) -> None:
        if not self.writable:
            raise Forbidden(
                f"share {self.share.id} lets you read only; ask its owner for write access"
            )


def check_permission(permission: str) -> str:
    if permission not in PERMISSIONS:
        raise InvalidInput(
            f"permission {permission!r} does not exist; use one of: {', '.join(PERMISSIONS)}"
        )
    return permission


# The owner's side ---------------------------------------------------------------------


def create_share(
    session: TenantSession,
    owner_id: uuid.UUID,
    names: Names,
    recipient: Recipient,
    permission: str,
) -> ShareRow:
    """Share the file or folder at the path of the owner's drive with a user or a group."""
    check_permission(permission)
    if not names:
        raise InvalidInput("the root folder of a drive cannot be shared; share a file or folder in it")
    node = access_node(session, owner_id, names)
    if recipient.user_id is not None:
        user = access_active_user(session, recipient.user_id)
        if user.id == owner_id:
            raise InvalidInput("you own this drive already; share with another user or a group")
    else:
        access_group(session, recipient.group_id)  # type: ignore[arg-type]

    share = ShareRow(
        id=uuid.uuid4(),
        node_id=node.id,
        owner_id=owner_id,
        user_id=recipient.user_id,
        group_id=recipient.group_id,
        permission=permission,
        created_by=owner_id,
    )
    session.add(share)
    try:
        # A savepoint, so that the caller's transaction survives the unique index's refusal.
        with session.begin_nested():
            session.flush()
    except DatabaseIntegrityError as exc:
        raise AlreadyExists(
            f"{join_path(names)!r} is shared with this recipient already; change that share's "
            "permission with PATCH /api/v1/shares/{id}"
        ) from exc
    log.info("share_created", share_id=str(share.id), node_id=str(node.id), permission=permission)
    return share


def list_own_shares(session: TenantSession, owner_id: uuid.UUID) -> list[ShareRow]:
    """Return the shares of the owner's files and folders, newest first."""
    query = (
        select(ShareRow).where(ShareRow.owner_id == owner_id).order_by(ShareRow.created_at.desc())
    )
    return list(session.scalars(query))


def access_own_share(session: TenantSession, owner_id: uuid.UUID, share_id: uuid.UUID) -> ShareRow:
    """Return a share of the owner's drive; anyone else's share is not found."""
    share = session.scalars(
        select(ShareRow).where(ShareRow.id == share_id, ShareRow.owner_id == owner_id)
    ).first()
    if share is None:
        raise NotFound(f"no share of yours has the id {share_id}")
    return share


def update_share(
    session: TenantSession, owner_id: uuid.UUID, share_id: uuid.UUID, permission: str
) -> ShareRow:
    share = access_own_share(session, owner_id, share_id)
    share.permission = check_permission(permission)
    share.modified_at = utcnow()
    session.flush()
    log.info("share_updated", share_id=str(share.id), permission=permission)
    return share


def revoke_share(session: TenantSession, owner_id: uuid.UUID, share_id: uuid.UUID) -> ShareRow:
    share = access_own_share(session, owner_id, share_id)
    session.delete(share)
    session.flush()
    log.info("share_revoked", share_id=str(share.id))
    return share


def shared_node(session: TenantSession, share: ShareRow) -> NodeRow:
    return session.scalars(select(NodeRow).where(NodeRow.id == share.node_id)).one()


# The recipient's side -----------------------------------------------------------------


def _is_recipient(session: TenantSession, user_id: uuid.UUID) -> ColumnElement[bool]:
    """Return the condition on ShareRow that the user is its recipient, directly or by a group."""
    groups = group_ids_of(session, user_id)
    return or_(ShareRow.user_id == user_id, ShareRow.group_id.in_(groups))


def access_share(session: TenantSession, user_id: uuid.UUID, share_id: uuid.UUID) -> SharedItem:
    """Return the share as the user reaches it, or raise NotFound.

    These shares are not found, like one that does not exist: one that names
    neither the user nor one of the user's groups, one whose item is in the
    trash, and one whose owner an admin disabled.
    """
    share = session.scalars(
        select(ShareRow).where(ShareRow.id == share_id, _is_recipient(session, user_id))
    ).first()
    missing = NotFound(f"no share with you has the id {share_id}")
    if share is None:
        raise missing
    node = shared_node(session, share)
    if is_trashed(session, node) or not _owner_is_active(session, share.owner_id):
        raise missing
    return SharedItem(share=share, node=node)


def _owner_is_active(session: TenantSession, owner_id: uuid.UUID) -> bool:
    return session.scalar(select(UserRow.status).where(UserRow.id == owner_id)) == ACTIVE


@dataclass(frozen=True)
class SharedWithMe:
    """A share someone else made with the user, directly or through a group."""

    share: ShareRow
    node: NodeRow
    owner: UserRow
    group: GroupRow | None


def list_shared_with(session: TenantSession, user_id: uuid.UUID) -> list[SharedWithMe]:
    """Return what active others shared with the user and is out of the trash, newest first."""
    query = (
        select(ShareRow, NodeRow, UserRow, GroupRow)
        .join(NodeRow, (NodeRow.tenant_id == ShareRow.tenant_id) & (NodeRow.id == ShareRow.node_id))
        .join(UserRow, (UserRow.tenant_id == ShareRow.tenant_id) & (UserRow.id == ShareRow.owner_id))
        .outerjoin(
            GroupRow, (GroupRow.tenant_id == ShareRow.tenant_id) & (GroupRow.id == ShareRow.group_id)
        )
        .where(
            _is_recipient(session, user_id), ShareRow.owner_id != user_id, UserRow.status == ACTIVE
        )
        .order_by(ShareRow.created_at.desc())
    )
    found = []
    for share, node, owner, group in session.execute(query):
        if node.deleted_at is None and not any(a.deleted_at for a in ancestors(session, node)):
            found.append(SharedWithMe(share=share, node=node, owner=owner, group=group))
    return found
