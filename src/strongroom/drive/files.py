"""The drives of a tenant's users: look-ups, folders, new versions, moves and the trash.

Each user has a drive: a folder tree whose nodes carry the user's id as
`owner_id`, with a root folder created on first use. Every function takes a
`TenantSession`, already bound to the tenant, and the drive's owner
explicitly, and changes nothing outside the session's transaction; the caller
commits. `user_id` is the user who acts, recorded as creator or deleter.
Paths arrive as tuples of names checked by `strongroom.drive.paths`. They
start at the drive's root, or with `base_id` at a node of the drive that was
shared: then the empty path is that node, and no path leads above it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError as DatabaseIntegrityError

from strongroom.base.errors import (
    AlreadyExists,
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    PreconditionFailed,
)
from strongroom.drive.models import FILE, FOLDER, BlobRow, NodeRow, VersionRow
from strongroom.drive.paths import MAX_DEPTH, join_path
from strongroom.storage.db import TenantSession
from strongroom.tenancy.models import utcnow
from strongroom.tenancy.usage import lock_tenant

Names = tuple[str, ...]
HTTP_DATE_FORMAT = "%a, %d %b %Y %H:%M:%S GMT"


@dataclass(frozen=True)
class Preconditions:
    """The conditional headers of a write: If-Match, If-None-Match and If-Unmodified-Since."""

    if_match: list[str] | None = None
    if_none_match: list[str] | None = None
    if_unmodified_since: dt.datetime | None = None


def etag_of(node: NodeRow) -> str | None:
    if node.kind != FILE or node.current_version_id is None:
        return None
    return f'"{node.current_version_id.hex}"'


# Look-ups -----------------------------------------------------------------------------


def create_root(session: TenantSession, owner_id: uuid.UUID) -> NodeRow:
    """Create the root folder of a user's drive."""
    root = NodeRow(
        id=uuid.uuid4(), owner_id=owner_id, parent_id=None, name="", kind=FOLDER, created_by=owner_id
    )
    session.add(root)
    session.flush()
    return root


def get_root(session: TenantSession, owner_id: uuid.UUID) -> NodeRow | None:
    """Return the root folder of the user's drive, or None before the drive's first use."""
    return session.scalars(
        select(NodeRow).where(NodeRow.owner_id == owner_id, NodeRow.parent_id.is_(None))
    ).first()


def ensure_root(session: TenantSession, owner_id: uuid.UUID) -> NodeRow:
    """Return the root folder of the user's drive, creating it on the drive's first use.

    Two first uses at the same time both insert a root, and the unique index
    on the roots rejects one. Its savepoint rolls back, and it reads the
    other's root instead.
    """
    root = get_root(session, owner_id)
    if root is not None:
        return root
    try:
        with session.begin_nested():
            return create_root(session, owner_id)
    except DatabaseIntegrityError:
        root = get_root(session, owner_id)
        if root is None:
            raise
        return root


def get_child(session: TenantSession, parent_id: uuid.UUID, name: str) -> NodeRow | None:
    return session.scalars(
        select(NodeRow).where(
            NodeRow.parent_id == parent_id,
            NodeRow.name == name,
            NodeRow.deleted_at.is_(None),
        )
    ).first()


def get_base(session: TenantSession, owner_id: uuid.UUID, base_id: uuid.UUID) -> NodeRow | None:
    """Return the live node of the user's drive that paths start from, or None."""
    return session.scalars(
        select(NodeRow).where(
            NodeRow.id == base_id, NodeRow.owner_id == owner_id, NodeRow.deleted_at.is_(None)
        )
    ).first()


def get_node(
    session: TenantSession, owner_id: uuid.UUID, names: Names, base_id: uuid.UUID | None = None
) -> NodeRow | None:
    """Return the live node at the path of the user's drive, or None."""
    node = get_root(session, owner_id) if base_id is None else get_base(session, owner_id, base_id)
    if node is None:
        return None
    for name in names:
        if node.kind != FOLDER:
            return None
        child = get_child(session, node.id, name)
        if child is None:
            return None
        node = child
    return node


def access_node(
    session: TenantSession,
    owner_id: uuid.UUID,
    names: Names,
    kind: str | None = None,
    base_id: uuid.UUID | None = None,
) -> NodeRow:
    """Return the live node at the path, or raise NotFound; with `kind`, raise if it is the other kind."""
    node = get_node(session, owner_id, names, base_id)
    path = join_path(names) or "/"
    if node is None:
        raise NotFound(f"nothing exists at {path!r}")
    if kind == FILE and node.kind != FILE:
        raise Conflict(f"{path!r} is a folder; use the folders API for it")
    if kind == FOLDER and node.kind != FOLDER:
        raise Conflict(f"{path!r} is a file, not a folder")
    return node


def access_node_by_id(session: TenantSession, owner_id: uuid.UUID, node_id: uuid.UUID) -> NodeRow:
    """Return a file or folder of the user's drive by id, or raise NotFound; a root is not found."""
    node = session.scalars(
        select(NodeRow).where(NodeRow.id == node_id, NodeRow.owner_id == owner_id)
    ).first()
    if node is None or node.parent_id is None:
        raise NotFound(f"no file or folder has the id {node_id}")
    return node


def ancestors(session: TenantSession, node: NodeRow) -> list[NodeRow]:
    """Return the folders above a node, nearest first, root last, trashed ones included.

    Raises IntegrityError instead of looping forever if the parent chain does
    not reach the root within the maximum depth.
    """
    chain: list[NodeRow] = []
    parent_id = node.parent_id
    while parent_id is not None:
        if len(chain) > MAX_DEPTH:
            raise IntegrityError(
                f"the folders above {node.id} do not reach the root within {MAX_DEPTH} levels; "
                "the tree has a loop, which `strongroom check` reports"
            )
        parent = session.scalars(select(NodeRow).where(NodeRow.id == parent_id)).one()
        chain.append(parent)
        parent_id = parent.parent_id
    return chain


def current_sha256(session: TenantSession, node: NodeRow) -> str | None:
    """Return the SHA-256 of a file's current version, or None for a folder."""
    if node.kind != FILE or node.current_version_id is None:
        return None
    return session.scalar(
        select(VersionRow.sha256).where(VersionRow.id == node.current_version_id)
    )


def path_of(session: TenantSession, node: NodeRow) -> str:
    """Return the path of a node from the root, through trashed folders too."""
    chain = [node, *ancestors(session, node)]
    return join_path([item.name for item in reversed(chain) if item.parent_id is not None])


def is_trashed(session: TenantSession, node: NodeRow) -> bool:
    """Return True if the node or a folder above it is in the trash."""
    chain = [node, *ancestors(session, node)]
    return any(item.deleted_at is not None for item in chain)


def mark_trashed(node: NodeRow, user_id: uuid.UUID | None) -> None:
    """Put a node in the trash; its descendants stay as they are and are hidden with it."""
    node.deleted_at = utcnow()
    node.deleted_by = user_id


def list_children(session: TenantSession, folder: NodeRow) -> list[NodeRow]:
    return list(
        session.scalars(
            select(NodeRow)
            .where(NodeRow.parent_id == folder.id, NodeRow.deleted_at.is_(None))
            .order_by(NodeRow.kind.desc(), NodeRow.name)
        )
    )


def current_content(session: TenantSession, node: NodeRow) -> tuple[VersionRow, BlobRow]:
    found = session.execute(
        select(VersionRow, BlobRow)
        .join(
            BlobRow,
            (BlobRow.tenant_id == VersionRow.tenant_id) & (BlobRow.id == VersionRow.blob_id),
        )
        .where(VersionRow.id == node.current_version_id)
    ).first()
    if found is None:
        raise NotFound(f"the file {node.name!r} has no content yet")
    return found[0], found[1]


def version_content(
    session: TenantSession, node: NodeRow, number: int
) -> tuple[VersionRow, BlobRow]:
    """Return version `number` of a file and its blob, or raise NotFound."""
    found = session.execute(
        select(VersionRow, BlobRow)
        .join(
            BlobRow,
            (BlobRow.tenant_id == VersionRow.tenant_id) & (BlobRow.id == VersionRow.blob_id),
        )
        .where(VersionRow.node_id == node.id, VersionRow.number == number)
    ).first()
    if found is None:
        raise NotFound(f"the file {node.name!r} has no version {number}; see its list of versions")
    return found[0], found[1]


def list_versions(session: TenantSession, node: NodeRow) -> list[VersionRow]:
    return list(
        session.scalars(
            select(VersionRow).where(VersionRow.node_id == node.id).order_by(VersionRow.number)
        )
    )


# Folders ------------------------------------------------------------------------------


def ensure_folders(
    session: TenantSession,
    owner_id: uuid.UUID,
    names: Names,
    user_id: uuid.UUID | None,
    target: Names | None = None,
    base_id: uuid.UUID | None = None,
) -> NodeRow:
    """Return the folder at the path of the user's drive, creating every missing folder on the way.

    `target` is the full path being written below the folder, for the message
    when a file is in the way.
    """
    node = ensure_root(session, owner_id) if base_id is None else _access_base(session, owner_id, base_id)
    if node.kind != FOLDER:
        raise Conflict(f"the shared item is a file, so it cannot contain {join_path(target or names)!r}")
    for depth, name in enumerate(names, start=1):
        child = get_child(session, node.id, name)
        if child is None:
            child = _add_node(session, node, name, FOLDER, user_id)
        elif child.kind != FOLDER:
            raise Conflict(
                f"{join_path(names[:depth])!r} is a file, so it cannot contain "
                f"{join_path(target or names)!r}"
            )
        node = child
    return node


def _access_base(session: TenantSession, owner_id: uuid.UUID, base_id: uuid.UUID) -> NodeRow:
    base = get_base(session, owner_id, base_id)
    if base is None:
        raise NotFound("the shared item is no longer there; its owner moved it to the trash")
    return base


def make_folder(
    session: TenantSession,
    owner_id: uuid.UUID,
    names: Names,
    user_id: uuid.UUID | None,
    base_id: uuid.UUID | None = None,
) -> NodeRow:
    if not names and base_id is not None:
        raise AlreadyExists("the shared folder exists already")
    if not names:
        raise AlreadyExists("the root folder always exists")
    existing = get_node(session, owner_id, names, base_id)
    if existing is not None:
        raise AlreadyExists(f"{join_path(names)!r} already exists as a {existing.kind}")
    parent = ensure_folders(session, owner_id, names[:-1], user_id, names, base_id)
    return _add_node(session, parent, names[-1], FOLDER, user_id)


def _add_node(
    session: TenantSession, parent: NodeRow, name: str, kind: str, user_id: uuid.UUID | None
) -> NodeRow:
    now = utcnow()
    node = NodeRow(
        id=uuid.uuid4(),
        owner_id=parent.owner_id,
        parent_id=parent.id,
        name=name,
        kind=kind,
        version=0,
        size=0,
        created_at=now,
        modified_at=now,
        created_by=user_id,
    )
    session.add(node)
    session.flush()
    return node


# Files --------------------------------------------------------------------------------


def check_preconditions(node: NodeRow | None, preconditions: Preconditions, path: str) -> None:
    """Apply the conditional headers to the node as it is now (RFC 9110, section 13)."""
    etag = etag_of(node) if node is not None else None
    if preconditions.if_match is not None:
        if etag is None or ("*" not in preconditions.if_match and etag not in preconditions.if_match):
            raise PreconditionFailed(
                f"{path!r} does not match If-Match: its ETag is {etag or 'none (no file)'}; "
                "fetch it again and retry with the current ETag"
            )
    elif preconditions.if_unmodified_since is not None and node is not None and etag is not None:
        # RFC 9110 has If-Match win over this header, and ignores it where no file exists.
        _check_unmodified_since(node, preconditions.if_unmodified_since, path)
    if preconditions.if_none_match is not None and etag is not None:
        if "*" in preconditions.if_none_match or etag in preconditions.if_none_match:
            raise PreconditionFailed(
                f"{path!r} already exists with ETag {etag}, which If-None-Match excludes"
            )


def _check_unmodified_since(node: NodeRow, since: dt.datetime, path: str) -> None:
    # HTTP dates have whole seconds, so the file's time is cut to the second, as in its
    # Last-Modified header. A change within the same second is not detected.
    modified = node.modified_at
    if modified.tzinfo is None:
        modified = modified.replace(tzinfo=dt.UTC)
    modified = modified.astimezone(dt.UTC).replace(microsecond=0)
    since = since.astimezone(dt.UTC)
    if modified > since:
        raise PreconditionFailed(
            f"{path!r} was modified at {modified.strftime(HTTP_DATE_FORMAT)}, after the "
            f"If-Unmodified-Since date {since.strftime(HTTP_DATE_FORMAT)}; fetch it again and retry"
        )


def add_version(
    session: TenantSession,
    owner_id: uuid.UUID,
    names: Names,
    blob: BlobRow,
    sha256: str,
    user_id: uuid.UUID | None,
    preconditions: Preconditions,
    base_id: uuid.UUID | None = None,
) -> tuple[NodeRow, VersionRow]:
    """Make a stored blob the newest version of the file at the path, creating the file if needed.

    With `base_id` and the empty path, the file is the shared node itself.
    """
    path = join_path(names) or "the shared item"
    if names:
        parent = ensure_folders(session, owner_id, names[:-1], user_id, names, base_id)
        node = _lock_child(session, parent.id, names[-1])
    elif base_id is not None:
        parent, node = None, _access_base(session, owner_id, base_id)
    else:
        raise InvalidInput("a file needs a name; the empty path is the root folder")
    if node is not None and node.kind != FILE:
        raise Conflict(f"{path!r} is a folder; choose another name for the file")
    check_preconditions(node, preconditions, path)
    if node is None:
        assert parent is not None, "a new file has a parent folder"
        node = _add_node(session, parent, names[-1], FILE, user_id)

    session.add(blob)
    version = VersionRow(
        id=uuid.uuid4(),
        node_id=node.id,
        number=node.version + 1,
        blob_id=blob.id,
        size=blob.size,
        sha256=sha256,
        created_by=user_id,
        created_at=utcnow(),
    )
    session.add(version)
    node.version = version.number
    node.current_version_id = version.id
    node.size = blob.size
    node.modified_at = version.created_at
    session.flush()
    return node, version


@dataclass(frozen=True)
class PrunedVersions:
    """Versions deleted from a file: their bytes, and the blobs that no version names any more."""

    bytes: int = 0
    blob_ids: tuple[uuid.UUID, ...] = ()


def prune_versions(session: TenantSession, node: NodeRow, keep: int) -> PrunedVersions:
    """Delete a file's versions beyond its newest `keep`, and the blob rows no other version names.

    The caller releases the returned bytes from the usage and deletes the
    returned blobs from the blob store after commit.
    """
    old = list(
        session.scalars(
            select(VersionRow)
            .where(VersionRow.node_id == node.id)
            .order_by(VersionRow.number.desc())
            .offset(max(keep, 1))
        )
    )
    if not old:
        return PrunedVersions()
    old_ids = [version.id for version in old]
    session.execute(delete(VersionRow).where(VersionRow.id.in_(old_ids)))
    blob_ids = list({version.blob_id for version in old})
    # A blob still named by a kept version stays; today every version has a blob of its own.
    still_used = set(
        session.scalars(select(VersionRow.blob_id).where(VersionRow.blob_id.in_(blob_ids)))
    )
    unused = [blob_id for blob_id in blob_ids if blob_id not in still_used]
    if unused:
        session.execute(delete(BlobRow).where(BlobRow.id.in_(unused)))
    return PrunedVersions(sum(version.size for version in old), tuple(unused))


def _lock_child(session: TenantSession, parent_id: uuid.UUID, name: str) -> NodeRow | None:
    """Return the live child and lock its row until commit (PostgreSQL; SQLite writers are serial)."""
    return session.scalars(
        select(NodeRow)
        .where(
            NodeRow.parent_id == parent_id,
            NodeRow.name == name,
            NodeRow.deleted_at.is_(None),
        )
        .with_for_update()
    ).first()


# Moves --------------------------------------------------------------------------------


def move_node(
    session: TenantSession,
    owner_id: uuid.UUID,
    source: Names,
    destination: Names,
    overwrite: bool,
    user_id: uuid.UUID | None,
) -> NodeRow:
    """Move or rename a file or folder within the user's drive, creating missing destination folders.

    With `overwrite`, a file or folder of the same kind in the way goes to the
    trash. Moves of one tenant run one at a time: two concurrent moves of
    folders into each other would otherwise each pass the check below and
    join the folders into a loop.
    """
    if not source or not destination:
        raise InvalidInput("the root folder cannot be moved, and nothing can replace it")
    lock_tenant(session)
    node = access_node(session, owner_id, source)
    if destination == source:
        return node
    inside_itself = Conflict(
        f"{join_path(source)!r} cannot be moved to {join_path(destination)!r}, "
        "which is inside itself"
    )
    if destination[: len(source)] == source:
        raise inside_itself

    parent = ensure_folders(session, owner_id, destination[:-1], user_id, target=destination)
    if parent.id == node.id or any(item.id == node.id for item in ancestors(session, parent)):
        raise inside_itself
    existing = get_child(session, parent.id, destination[-1])
    if existing is not None and existing.id != node.id:
        if not overwrite:
            raise AlreadyExists(
                f"{join_path(destination)!r} already exists; pass overwrite to replace it"
            )
        if existing.kind != node.kind:
            raise Conflict(f"{join_path(destination)!r} is a {existing.kind}, not a {node.kind}")
        mark_trashed(existing, user_id)
        session.flush()

    node.parent_id = parent.id
    node.name = destination[-1]
    session.flush()
    return node


def count_usage(session: TenantSession) -> int:
    """Recount the bytes of every version, for checks against the usage counter."""
    return session.scalar(select(func.coalesce(func.sum(VersionRow.size), 0))) or 0

