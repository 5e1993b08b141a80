"""Tenant tables of the drive: folders, files, blobs, shares, links, upload requests, tus uploads."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from strongroom.identity.models import GroupRow, UserRow
from strongroom.storage.db import TenantBase, TenantScoped
from strongroom.tenancy.models import utcnow

FILE = "file"
FOLDER = "folder"

READ = "read"
WRITE = "write"
PERMISSIONS = (READ, WRITE)


class NodeRow(TenantScoped, TenantBase):
    """A file or folder of one user's drive. A drive's root folder has no parent and an empty name.

    Every node of a drive carries the drive's `owner_id`, so a drive's root is
    found by its owner and its trash is listed without walking the tree. A
    trashed node keeps its parent and name and gets `deleted_at`; its
    descendants stay as they are and are hidden with it. Names are unique
    among the live children of a folder only, so a trashed file does not block
    a new one of the same name.
    """

    __tablename__ = "nodes"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "parent_id"], ["nodes.tenant_id", "nodes.id"]),
        ForeignKeyConstraint(["tenant_id", "owner_id"], [UserRow.tenant_id, UserRow.id]),
        Index(
            "uq_nodes_live_name",
            "tenant_id",
            "parent_id",
            "name",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index(
            "uq_nodes_root",
            "tenant_id",
            "owner_id",
            unique=True,
            sqlite_where=text("parent_id IS NULL"),
            postgresql_where=text("parent_id IS NULL"),
        ),
        Index(
            "ix_nodes_trash",
            "tenant_id",
            "owner_id",
            "deleted_at",
            sqlite_where=text("deleted_at IS NOT NULL"),
            postgresql_where=text("deleted_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column()
    parent_id: Mapped[uuid.UUID | None] = mapped_column()
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(10))
    current_version_id: Mapped[uuid.UUID | None] = mapped_column()
    version: Mapped[int] = mapped_column(Integer, default=0)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    modified_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[uuid.UUID | None] = mapped_column()
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_by: Mapped[uuid.UUID | None] = mapped_column()


class BlobRow(TenantScoped, TenantBase):
    """Encrypted content in the blob store, with its key wrapped by a tenant key version."""

    __tablename__ = "blobs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    size: Mapped[int] = mapped_column(BigInteger)
    stored_size: Mapped[int] = mapped_column(BigInteger)
    chunk_size: Mapped[int] = mapped_column(Integer)
    key_version: Mapped[int] = mapped_column(Integer)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class VersionRow(TenantScoped, TenantBase):
    __tablename__ = "versions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "node_id", "number"),
        ForeignKeyConstraint(["tenant_id", "node_id"], ["nodes.tenant_id", "nodes.id"]),
        ForeignKeyConstraint(["tenant_id", "blob_id"], ["blobs.tenant_id", "blobs.id"]),
        Index("ix_versions_blob", "tenant_id", "blob_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    node_id: Mapped[uuid.UUID] = mapped_column()
    number: Mapped[int] = mapped_column(Integer)
    blob_id: Mapped[uuid.UUID] = mapped_column()
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[uuid.UUID | None] = mapped_column()


class UploadRow(TenantScoped, TenantBase):
    """A resumable (tus) upload of one user, from creation until it expires or is terminated.

    The content arrives encrypted for the blob `blob_id`, whose key is wrapped
    here as in `BlobRow`. `upload_offset` counts the plaintext bytes stored so far.
    A completed upload keeps its row, with `upload_offset == upload_length`, so that a
    client asking for its offset learns that it is done. Its content is then
    the file version made from it.
    """

    __tablename__ = "uploads"
    __table_args__ = (Index("ix_uploads_expires_at", "tenant_id", "expires_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column()
    path: Mapped[str] = mapped_column(String(4096))
    upload_length: Mapped[int] = mapped_column(BigInteger)
    upload_offset: Mapped[int] = mapped_column(BigInteger, default=0)
    # The Upload-Metadata header as the client sent it, which HEAD must return unchanged.
    upload_metadata: Mapped[str] = mapped_column(String(4096), default="")
    blob_id: Mapped[uuid.UUID] = mapped_column()
    chunk_size: Mapped[int] = mapped_column(Integer)
    key_version: Mapped[int] = mapped_column(Integer)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class DeadPropertyRow(TenantScoped, TenantBase):
    """A WebDAV dead property of a file or folder: a name in Clark notation and its XML value.

    Keyed by the node, so the property follows the node through moves and the
    trash. The database deletes the properties with the node when it is purged.
    """

    __tablename__ = "dav_properties"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "node_id"], ["nodes.tenant_id", "nodes.id"], ondelete="CASCADE"
        ),
    )

    node_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(1024), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ShareRow(TenantScoped, TenantBase):
    """A file or folder of one user's drive, shared with one user or one group to read or write.

    `owner_id` is the owner of the drive the node is in, kept here so that a
    user's shares are listed without a join. Deleting the node, the user it
    is for or the group it is for deletes the share.
    """

    __tablename__ = "shares"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "node_id"], [NodeRow.tenant_id, NodeRow.id], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(["tenant_id", "owner_id"], [UserRow.tenant_id, UserRow.id]),
        ForeignKeyConstraint(
            ["tenant_id", "user_id"], [UserRow.tenant_id, UserRow.id], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["tenant_id", "group_id"], [GroupRow.tenant_id, GroupRow.id], ondelete="CASCADE"
        ),
        UniqueConstraint("tenant_id", "node_id", "user_id"),
        UniqueConstraint("tenant_id", "node_id", "group_id"),
        CheckConstraint("(user_id IS NULL) <> (group_id IS NULL)", name="one_recipient"),
        CheckConstraint("permission IN ('read', 'write')", name="permission"),
        Index("ix_shares_owner", "tenant_id", "owner_id"),
        Index("ix_shares_user", "tenant_id", "user_id"),
        Index("ix_shares_group", "tenant_id", "group_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    node_id: Mapped[uuid.UUID] = mapped_column()
    owner_id: Mapped[uuid.UUID] = mapped_column()
    user_id: Mapped[uuid.UUID | None] = mapped_column()
    group_id: Mapped[uuid.UUID | None] = mapped_column()
    permission: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[uuid.UUID | None] = mapped_column()
    modified_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LinkRow(TenantScoped, TenantBase):
    """A public link to a file or folder. Only the SHA-256 of its token is stored.

    `node_id` has no foreign key, so that purging the file from the trash does
    not need to touch its links: a link whose node is gone finds nothing.
    `download_units` counts downloads in millionths (see `drive.links`).
    """

    __tablename__ = "links"
    __table_args__ = (
        UniqueConstraint("tenant_id", "token_hash"),
        ForeignKeyConstraint(["tenant_id", "owner_id"], [UserRow.tenant_id, UserRow.id]),
        Index("ix_links_owner", "tenant_id", "owner_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    token_hash: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[uuid.UUID] = mapped_column()
    node_id: Mapped[uuid.UUID] = mapped_column()
    kind: Mapped[str] = mapped_column(String(10))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    max_downloads: Mapped[int | None] = mapped_column(Integer)
    download_units: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class UploadRequestRow(TenantScoped, TenantBase):
    """A link through which outsiders put files into one folder. Only its token's SHA-256 is stored."""

    __tablename__ = "upload_requests"
    __table_args__ = (
        UniqueConstraint("tenant_id", "token_hash"),
        ForeignKeyConstraint(["tenant_id", "owner_id"], [UserRow.tenant_id, UserRow.id]),
        Index("ix_upload_requests_owner", "tenant_id", "owner_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    token_hash: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[uuid.UUID] = mapped_column()
    folder_id: Mapped[uuid.UUID] = mapped_column()
    title: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    max_file_size: Mapped[int | None] = mapped_column(BigInteger)
    max_total_size: Mapped[int | None] = mapped_column(BigInteger)
    bytes_received: Mapped[int] = mapped_column(BigInteger, default=0)
    files_received: Mapped[int] = mapped_column(Integer, default=0)
    notify: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
