"""Public links and upload requests of the caller: create, list and revoke.

The token is in the URL returned at creation, and only there: it is stored
hashed. A time given without a UTC offset is read in the tenant's time zone.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, StrictBool, StrictInt

from strongroom.drive import files, links, upload_requests
from strongroom.drive.models import LinkRow, UploadRequestRow
from strongroom.drive.paths import split_path
from strongroom.interfaces import webhook_events
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
from strongroom.storage.db import TenantSession
from strongroom.tenancy.events import Target, add_event
from strongroom.tenancy.modules import PUBLIC_LINKS, UPLOAD_REQUESTS
from strongroom.tenancy.time_zones import tenant_time_zone

# The largest byte count a limit may name: 2**53 - 1, about 8 PiB. OpenAPI documents give
# bounds as JSON numbers, which many parsers read as doubles, and this is the largest integer
# a double represents exactly, so the declared maximum is the enforced one.
MAX_BYTES = 2**53 - 1

# Each router returns 403 while its module is off for the tenant.
link_router = APIRouter(
    prefix=API_PREFIX, tags=["links"], dependencies=[require_module(PUBLIC_LINKS)]
)
request_router = APIRouter(
    prefix=API_PREFIX, tags=["upload requests"], dependencies=[require_module(UPLOAD_REQUESTS)]
)


class LinkCreate(RequestBody):
    path: str = Field(description="the file or folder to share, from the root of your files")
    password: str | None = Field(
        default=None,
        description="a password visitors must give (at least 12 characters); scripts send it with "
        "HTTP Basic and any user name",
    )
    expires_at: dt.datetime | None = Field(
        default=None,
        description="when the link stops working; without a UTC offset, in the tenant's time zone",
    )
    max_downloads: StrictInt | None = Field(
        default=None,
        ge=1,
        le=links.MAX_DOWNLOADS,
        description="how many whole downloads the link serves; a range counts its share",
    )


class LinkOut(BaseModel):
    id: str
    type: str = Field(description="file or folder")
    path: str | None = Field(description="where the file or folder is now; null once deleted")
    prefix: str = Field(description="the first characters of the token, to tell links apart")
    has_password: bool
    created: dt.datetime
    expires_at: dt.datetime | None = Field(description="in UTC")
    expires_at_local: str | None = Field(description="the expiry in the tenant's time zone")
    time_zone: str
    max_downloads: int | None
    downloads_used: float = Field(description="whole downloads so far; ranges add their share")
    state: str = Field(description="active, expired, exhausted or revoked")
    revoked: dt.datetime | None


class LinkCreated(LinkOut):
    url: str = Field(
        description="the link: a page in a browser, the content for other clients; shown only here"
    )
    download_url: str = Field(description="the content itself (a zip archive for a folder)")


class LinkListing(BaseModel):
    items: list[LinkOut]


class UploadRequestCreate(RequestBody):
    path: str = Field(description="the folder that receives the files")
    title: str | None = Field(default=None, description="shown to the people who upload")
    password: str | None = Field(default=None, description="a password uploaders must give")
    expires_at: dt.datetime | None = None
    # The bounds are those `upload_requests.check_size_limit` enforces, so OpenAPI states them.
    max_file_size: StrictInt | None = Field(
        default=None, ge=1, le=MAX_BYTES, description="bytes per file; null for no limit"
    )
    max_total_size: StrictInt | None = Field(
        default=None,
        ge=1,
        le=MAX_BYTES,
        description="bytes of all files together; null for no limit",
    )
    notify: StrictBool = Field(default=True, description="e-mail me when files arrive")


class UploadRequestOut(BaseModel):
    id: str
    title: str
    path: str | None = Field(description="the receiving folder now; null once deleted")
    prefix: str
    has_password: bool
    created: dt.datetime
    expires_at: dt.datetime | None
    expires_at_local: str | None
    time_zone: str
    max_file_size: int | None
    max_total_size: int | None
    bytes_received: int
    files_received: int
    notify: bool
    state: str = Field(description="active, expired, full or revoked")
    revoked: dt.datetime | None


class UploadRequestCreated(UploadRequestOut):
    url: str = Field(description="the page where outsiders upload; shown only here")
    upload_url: str = Field(description="PUT a file's raw body here, with {name} replaced")


class UploadRequestListing(BaseModel):
    items: list[UploadRequestOut]


# Links --------------------------------------------------------------------------------


@link_router.post(
    "/links", response_model=LinkCreated, status_code=201, summary="Create a public link"
)
def create_link(
    body: LinkCreate,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    principal: PrincipalDep,
) -> LinkCreated:
    names = split_path(body.path)
    zone = tenant_time_zone(tenant)
    with runtime.stores.session(tenant, write=True) as session:
        link, token = links.create_link(
            session,
            principal.user_id,
            names,
            body.password,
            _in_zone(body.expires_at, zone),
            body.max_downloads,
            tenant.settings.link_max_expiry_days,
        )
        add_event(
            session,
            tenant,
            "link_created",
            actor_of(request, principal.user_id),
            target=Target("link", link.id),
            new=audited_link(link),
        )
        out = _link_out(link, "/".join(names), zone)
    webhook_events.link_created(runtime, tenant, link, "/".join(names), principal.user_id)
    url = f"{_base_url(request)}/s/{token}"
    return LinkCreated(**out.model_dump(), url=url, download_url=f"{url}/download")


@link_router.get("/links", response_model=LinkListing, summary="List my public links")
def list_links(runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep) -> LinkListing:
    zone = tenant_time_zone(tenant)
    with runtime.stores.session(tenant) as session:
        items = [
            _link_out(link, links.path_of_target(session, link), zone)
            for link in links.list_links(session, principal.user_id)
        ]
    return LinkListing(items=items)


@link_router.delete("/links/{link_id}", response_model=LinkOut, summary="Revoke one of my links")
def revoke_link(
    link_id: str, request: Request, runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep
) -> LinkOut:
    zone = tenant_time_zone(tenant)
    with runtime.stores.session(tenant, write=True) as session:
        link = links.revoke_link(session, principal.user_id, parse_object_id(link_id, "link"))
        add_event(
            session,
            tenant,
            "link_revoked",
            actor_of(request, principal.user_id),
            target=Target("link", link.id),
            old=audited_link(link),
        )
        return _link_out(link, links.path_of_target(session, link), zone)


# Upload requests ----------------------------------------------------------------------


@request_router.post(
    "/upload-requests",
    response_model=UploadRequestCreated,
    status_code=201,
    summary="Create an upload request into one of my folders",
)
def create_upload_request(
    body: UploadRequestCreate,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    principal: PrincipalDep,
) -> UploadRequestCreated:
    names = split_path(body.path)
    zone = tenant_time_zone(tenant)
    with runtime.stores.session(tenant, write=True) as session:
        row, token = upload_requests.create_upload_request(
            session,
            principal.user_id,
            names,
            title=body.title,
            password=body.password,
            expires_at=_in_zone(body.expires_at, zone),
            max_file_size=body.max_file_size,
            max_total_size=body.max_total_size,
            notify=body.notify,
        )
        add_event(
            session,
            tenant,
            "upload_request_created",
            actor_of(request, principal.user_id),
            target=Target("upload_request", row.id),
            new=_audited_upload_request(row),
        )
        out = _upload_request_out(row, "/".join(names), zone)
    url = f"{_base_url(request)}/r/{token}"
    return UploadRequestCreated(**out.model_dump(), url=url, upload_url=f"{url}/files/{{name}}")


@request_router.get(
    "/upload-requests", response_model=UploadRequestListing, summary="List my upload requests"
)
def list_upload_requests(
    runtime: RuntimeDep, tenant: TenantDep, principal: PrincipalDep
) -> UploadRequestListing:
    zone = tenant_time_zone(tenant)
    with runtime.stores.session(tenant) as session:
        items = [
            _upload_request_out(row, _folder_path(session, row), zone)
            for row in upload_requests.list_upload_requests(session, principal.user_id)
        ]
    return UploadRequestListing(items=items)


@request_router.delete(
    "/upload-requests/{request_id}",
    response_model=UploadRequestOut,
    summary="Revoke one of my upload requests",
)
def revoke_upload_request(
    request_id: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    principal: PrincipalDep,
) -> UploadRequestOut:
    zone = tenant_time_zone(tenant)
    with runtime.stores.session(tenant, write=True) as session:
        row = upload_requests.revoke_upload_request(
            session, principal.user_id, parse_object_id(request_id, "upload request")
        )
        add_event(
            session,
            tenant,
            "upload_request_revoked",
            actor_of(request, principal.user_id),
            target=Target("upload_request", row.id),
            old=_audited_upload_request(row),
        )
        return _upload_request_out(row, _folder_path(session, row), zone)


# Shapes -------------------------------------------------------------------------------


def audited_link(link: LinkRow) -> dict[str, object]:
    """Return a link as the audit trail records it: never its token or password hash."""
    return {
        "node": str(link.node_id),
        "type": link.kind,
        "prefix": link.prefix,
        "has_password": link.password_hash is not None,
        "expires_at": utc(link.expires_at).isoformat() if link.expires_at else None,
        "max_downloads": link.max_downloads,
    }


def _audited_upload_request(row: UploadRequestRow) -> dict[str, object]:
    return {
        "folder": str(row.folder_id),
        "prefix": row.prefix,
        "has_password": row.password_hash is not None,
        "expires_at": utc(row.expires_at).isoformat() if row.expires_at else None,
        "max_file_size": row.max_file_size,
        "max_total_size": row.max_total_size,
    }


def _base_url(request: Request) -> str:
    """Return the tenant's base URL as the client called it: host form or /t/{slug} form."""
    return str(request.base_url).rstrip("/")


def _in_zone(moment: dt.datetime | None, zone: zoneinfo.ZoneInfo) -> dt.datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=zone)


def _expiry(
    moment: dt.datetime | None, zone: zoneinfo.ZoneInfo
) -> tuple[dt.datetime | None, str | None]:
    if moment is None:
        return None, None
    expires = utc(moment)
    return expires, expires.astimezone(zone).isoformat()


def _link_out(link: LinkRow, path: str | None, zone: zoneinfo.ZoneInfo) -> LinkOut:
    expires, local = _expiry(link.expires_at, zone)
    return LinkOut(
        id=str(link.id),
        type=link.kind,
        path=path,
        prefix=link.prefix,
        has_password=link.password_hash is not None,
        created=utc(link.created_at),
        expires_at=expires,
        expires_at_local=local,
        time_zone=zone.key,
        max_downloads=link.max_downloads,
        downloads_used=links.downloads_used(link),
        state=links.state_of(link),
        revoked=utc(link.revoked_at) if link.revoked_at else None,
    )


def _folder_path(session: TenantSession, row: UploadRequestRow) -> str | None:
    folder = upload_requests.get_folder(session, row)
    return None if folder is None else files.path_of(session, folder)


def _upload_request_out(
    row: UploadRequestRow, path: str | None, zone: zoneinfo.ZoneInfo
) -> UploadRequestOut:
    expires, local = _expiry(row.expires_at, zone)
    return UploadRequestOut(
        id=str(row.id),
        title=row.title,
        path=path,
        prefix=row.prefix,
        has_password=row.password_hash is not None,
        created=utc(row.created_at),
        expires_at=expires,
        expires_at_local=local,
        time_zone=zone.key,
        max_file_size=row.max_file_size,
        max_total_size=row.max_total_size,
        bytes_received=row.bytes_received,
        files_received=row.files_received,
        notify=row.notify,
        state=upload_requests.state_of(row),
        revoked=utc(row.revoked_at) if row.revoked_at else None,
    )
