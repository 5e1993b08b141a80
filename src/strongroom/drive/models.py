"""Tenant tables of the drive: the folder tree, file versions, blobs, public links and upload requests."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from strongroom.identity.models import UserRow
from strongroom.storage.db import TenantBase, TenantScoped
from strongroom.tenancy.models import utcnow

FILE = "file"
FOLDER = "folder"


class NodeRow(TenantScoped, TenantBase):
    """A file or folder. The root folder has no parent and an empty name.

    A trashed node keeps its parent and name and gets `deleted_at`; its
    descendants stay as they are and are hidden with it. Names are unique
    among the live children of a folder only, so a trashed file does not block
    a new one of the same name.
    """

    __tablename__ = "nodes"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "parent_id"], ["nodes.tenant_id", "nodes.id"]),
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
            unique=True,
            sqlite_where=text("parent_id IS NULL"),
            postgresql_where=text("parent_id IS NULL"),
        ),
        Index(
            "ix_nodes_trash",
            "tenant_id",
            "deleted_at",
            sqlite_where=text("deleted_at IS NOT NULL"),
            postgresql_where=text("deleted_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
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
