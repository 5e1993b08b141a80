"""JSON shapes of the API, which also make up its OpenAPI document."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

import orjson
from pydantic import BaseModel, Field, StrictBool, StrictInt

from strongroom.drive.files import etag_of
from strongroom.drive.listing import Listing
from strongroom.drive.models import FILE, NodeRow
from strongroom.interfaces.api.bodies import RequestBody


def utc(moment: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes for timezone-aware columns; they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


class NodeOut(BaseModel):
    id: uuid.UUID
    path: str
    name: str
    type: str = Field(description="file or folder")
    size: int | None = Field(description="bytes of the current version; null for folders")
    version: int | None = Field(description="number of the current version; null for folders")
    modified: dt.datetime
    etag: str | None = None
    sha256: str | None = Field(
        default=None,
        description="SHA-256 of the current version's content; given in upload responses and "
        "folder listings, null elsewhere",
    )
    trashed: bool = Field(
        default=False, description="true when the item or a folder above it is in the trash"
    )

    @classmethod
    def of(
        cls, node: NodeRow, path: str, sha256: str | None = None, trashed: bool = False
    ) -> NodeOut:
        is_file = node.kind == FILE
        return cls(
            id=node.id,
            path=path,
            name=node.name,
            type=node.kind,
            size=node.size if is_file else None,
            version=node.version if is_file else None,
            modified=utc(node.modified_at),
            etag=etag_of(node),
            sha256=sha256,
            trashed=trashed,
        )


class FolderListing(BaseModel):
    path: str
    id: uuid.UUID
    items: list[NodeOut]


def listing_json(found: Listing) -> bytes:
    """Encode a listing as FolderListing would, without building a model per item."""
    base = found.path
    items = [
        {
            "id": entry.id,
            "path": f"{base}/{entry.name}" if base else entry.name,
            "name": entry.name,
            "type": entry.kind,
            "size": entry.size if entry.kind == FILE else None,
            "version": entry.version if entry.kind == FILE else None,
            "modified": entry.modified,
            "etag": f'"{entry.version_id_hex}"'
            if entry.kind == FILE and entry.version_id_hex
            else None,
            "sha256": entry.sha256 if entry.kind == FILE else None,
            "trashed": False,
        }
        for entry in found.entries
    ]
    document = {"path": base, "id": found.folder_id, "items": items}
    return orjson.dumps(document)


class TrashItem(BaseModel):
    id: uuid.UUID
    name: str
    type: str
    original_path: str
    size: int | None
    deleted: dt.datetime


class TrashListing(BaseModel):
    items: list[TrashItem]


class PurgeResult(BaseModel):
    items_removed: int
    bytes_freed: int


class MoveRequest(RequestBody):
    source: str = Field(alias="from", description="path of the file or folder to move")
    destination: str = Field(
        alias="to", description="its new path, name included; missing folders are created"
    )
    overwrite: StrictBool = Field(
        default=False,
        description="move a file or folder of the same kind that is in the way to the trash",
    )

    model_config = {"populate_by_name": True}


class VersionOut(BaseModel):
    number: int
    id: uuid.UUID
    size: int
    sha256: str
    created: dt.datetime


class VersionListing(BaseModel):
    path: str
    items: list[VersionOut]


class VersionRestore(RequestBody):
    number: StrictInt = Field(
        ge=1, le=2**31 - 1, description="the version whose content becomes the newest version"
    )


class UsageOut(BaseModel):
    used_bytes: int
    quota_bytes: int | None


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    role: str
    tenant: str
    expires: dt.datetime | None = Field(
        default=None, description="for a guest, when the account ends"
    )


class TokenOut(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str
    created: dt.datetime
    expires: dt.datetime | None
    last_used: dt.datetime | None
    revoked: dt.datetime | None


class TokenListing(BaseModel):
    items: list[TokenOut]


class TokenCreate(RequestBody):
    name: str = Field(default="", max_length=200)
    expires_in_days: StrictInt | None = Field(default=None, ge=1, le=3650)


class TokenCreated(TokenOut):
    token: str = Field(description="the secret, shown only in this response")


class ModuleOut(BaseModel):
    name: str
    enabled: bool = Field(description="true when the module's routes serve requests")
    allowed: bool = Field(description="true when the tenant's plan includes the module")


class ModulesOut(BaseModel):
    items: list[ModuleOut]


class LimitsOut(BaseModel):
    """The limits in force: the plan's, with the operator's overrides for this tenant; null is unlimited."""

    plan: str
    storage_bytes: int | None
    max_users: int | None
    max_file_size: int | None = Field(description="bytes; the max_file_size setting may be lower")
    requests_per_minute: int | None = Field(description="for the whole tenant")
    user_requests_per_minute: int | None = Field(description="for each user")
    bandwidth_bytes_per_second: int | None = Field(description="uploads and downloads together")
    concurrent_transfers: int | None = Field(description="uploads and downloads running at once")


class AppPasswordOut(BaseModel):
    id: uuid.UUID
    name: str
    created: dt.datetime
    last_used: dt.datetime | None = Field(description="to the minute; null if never used")
    revoked: dt.datetime | None


class AppPasswordListing(BaseModel):
    items: list[AppPasswordOut]


class AppPasswordCreate(RequestBody):
    name: str = Field(
        default="", max_length=200, description="a label to recognise it by, such as the device"
    )


class AppPasswordCreated(AppPasswordOut):
    password: str = Field(
        description="the secret for WebDAV clients, with your e-mail address as user name; "
        "shown only in this response"
    )


# Users, groups and shares -------------------------------------------------------------

Permission = Literal["read", "write"]


class UserBrief(BaseModel):
    id: uuid.UUID
    email: str
    display_name: str


class UserListing(BaseModel):
    items: list[UserBrief]


class GroupCreate(RequestBody):
    name: str = Field(description="unique in the tenant; at most 200 characters")


class GroupRename(RequestBody):
    name: str = Field(description="the new name, unique in the tenant")


class GroupSummary(BaseModel):
    id: uuid.UUID
    name: str
    members: int = Field(description="the number of members")


class GroupListing(BaseModel):
    items: list[GroupSummary]


class GroupOut(BaseModel):
    id: uuid.UUID
    name: str
    created: dt.datetime
    members: list[UserBrief]


class ShareCreate(RequestBody):
    path: str = Field(description="the file or folder of your drive to share")
    user_id: uuid.UUID | None = Field(
        default=None, description="an active user of the tenant; give this or group_id"
    )
    group_id: uuid.UUID | None = Field(
        default=None, description="a group of the tenant; give this or user_id"
    )
    permission: Permission = Field(
        default="read", description="read, or write to change, add and delete files in it"
    )


class ShareUpdate(RequestBody):
    permission: Permission


class RecipientOut(BaseModel):
    type: Literal["user", "group"]
    id: uuid.UUID
    name: str = Field(description="the user's e-mail address or the group's name")


class ShareOut(BaseModel):
    id: uuid.UUID
    path: str = Field(description="where the shared item is in your drive now")
    name: str
    type: str = Field(description="file or folder")
    permission: Permission
    recipient: RecipientOut
    trashed: bool = Field(
        description="true while the item or a folder above it is in the trash, which stops access"
    )
    created: dt.datetime
    modified: dt.datetime


class ShareListing(BaseModel):
    items: list[ShareOut]


class GroupBrief(BaseModel):
    id: uuid.UUID
    name: str


class SharedItemOut(BaseModel):
    id: uuid.UUID = Field(description="the share's id, for /api/v1/shares/{id}/files and /folders")
    name: str
    type: str = Field(description="file or folder")
    size: int | None = Field(description="bytes of the current version; null for folders")
    modified: dt.datetime
    permission: Permission
    owner: UserBrief
    group: GroupBrief | None = Field(description="the group it was shared with you through")
    shared: dt.datetime


class SharedWithMeListing(BaseModel):
    items: list[SharedItemOut]
