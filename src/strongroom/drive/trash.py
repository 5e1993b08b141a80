"""The trash: moving items in, listing, restoring, and deleting them for good.

A trashed node keeps its parent and name and gets `deleted_at`; everything
below it stays as it is and is hidden with it. Like `strongroom.drive.files`,
every function takes a session bound to the tenant and leaves the commit to
the caller.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import delete, select

from strongroom.base.errors import AlreadyExists, Conflict, Forbidden, InvalidInput, NotFound
from strongroom.drive.files import (
    Names,
    Preconditions,
    access_node,
    ancestors,
    check_preconditions,
    get_child,
    mark_trashed,
    path_of,
)
from strongroom.drive.models import BlobRow, NodeRow, VersionRow
from strongroom.drive.paths import join_path
from strongroom.identity.tokens import Principal
from strongroom.storage.db import TenantSession


def trash_node(
    session: TenantSession,
    names: Names,
    user_id: uuid.UUID | None,
    kind: str,
    preconditions: Preconditions | None = None,
) -> NodeRow:
    if not names:
        raise InvalidInput("the root folder cannot be moved to the trash")
    node = access_node(session, names, kind)
    if preconditions is not None:
        check_preconditions(node, preconditions, join_path(names))
    mark_trashed(node, user_id)
    session.flush()
    return node


def list_trash(session: TenantSession) -> list[NodeRow]:
    return list(
        session.scalars(
            select(NodeRow)
            .where(NodeRow.deleted_at.is_not(None))
            .order_by(NodeRow.deleted_at.desc())
        )
    )


def access_trashed(session: TenantSession, node_id: uuid.UUID) -> NodeRow:
    node = session.scalars(
        select(NodeRow).where(NodeRow.id == node_id, NodeRow.deleted_at.is_not(None))
    ).first()
    if node is None:
        raise NotFound(f"no item in the trash has the id {node_id}")
    return node


def restore_node(session: TenantSession, node_id: uuid.UUID) -> NodeRow:
    """Put a trashed item back where it was; its folder must not be in the trash itself."""
    node = access_trashed(session, node_id)
    ancestor = _trashed_ancestor(session, node)
    if ancestor is not None:
        raise Conflict(
            f"the folder {ancestor.name!r} that held this item is in the trash; restore it first"
        )
    if get_child(session, node.parent_id, node.name) is not None:
        raise AlreadyExists(
            f"{path_of(session, node)!r} exists again; rename or move it, then restore"
        )
    node.deleted_at = None
    node.deleted_by = None
    session.flush()
    return node


def _trashed_ancestor(session: TenantSession, node: NodeRow) -> NodeRow | None:
    return next((parent for parent in ancestors(session, node) if parent.deleted_at), None)


@dataclass
class Purged:
    nodes: int
    bytes: int
    blob_ids: list[uuid.UUID]


def check_can_purge(node: NodeRow, actor: Principal | None) -> None:
    """Members delete for good only what they put in the trash themselves; admins anything.

    No actor means the trash expiry job, which deletes whatever has been in the
    trash longer than the retention period.
    """
    if actor is None:
        return
    if not actor.is_admin and node.deleted_by != actor.user_id:
        raise Forbidden(
            f"{node.name!r} was put in the trash by another user; only a tenant admin can "
            "delete it for good"
        )


def purge_node(session: TenantSession, node_id: uuid.UUID, actor: Principal | None) -> Purged:
    """Delete a trashed item, everything below it and their versions; return the blobs to remove.

    The caller deletes the returned blobs from the blob store after commit; a
    crash in between leaves orphan blobs, which `strongroom check` finds.
    """
    node = access_trashed(session, node_id)
    check_can_purge(node, actor)
    subtree = _subtree_ids(session, node.id)
    versions = [
        version
        for batch in _batches(subtree)
        for version in session.scalars(select(VersionRow).where(VersionRow.node_id.in_(batch)))
    ]
    blob_ids = [version.blob_id for version in versions]
    purged = Purged(nodes=len(subtree), bytes=sum(v.size for v in versions), blob_ids=blob_ids)

    for batch in _batches(subtree):
        session.execute(delete(VersionRow).where(VersionRow.node_id.in_(batch)))
    for batch in _batches(blob_ids):
        session.execute(delete(BlobRow).where(BlobRow.id.in_(batch)))
    # Children first, so that no row ever points at a deleted parent.
    for batch in _batches(list(reversed(subtree))):
        session.execute(delete(NodeRow).where(NodeRow.id.in_(batch)))
    return purged


def _batches(ids: list[uuid.UUID], size: int = 500) -> list[list[uuid.UUID]]:
    """Split long id lists, because SQLite limits the parameters of one statement."""
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def _subtree_ids(session: TenantSession, root_id: uuid.UUID) -> list[uuid.UUID]:
    """Ids of a node and all its descendants, live or trashed, parents before children."""
    ordered = [root_id]
    frontier = [root_id]
    while frontier:
        children = [
            child_id
            for batch in _batches(frontier)
            for child_id in session.scalars(select(NodeRow.id).where(NodeRow.parent_id.in_(batch)))
        ]
        ordered.extend(children)
        frontier = children
    return ordered
