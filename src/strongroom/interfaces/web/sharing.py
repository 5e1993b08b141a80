"""The sharing page of a file or folder: shares with users and groups, and public links.

The page calls the same drive functions as the REST API, so a share or link
made here is the one the API lists. A new link's URL is shown once, in the
response to its form, because only the SHA-256 of its token is stored.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from strongroom.base.dates import format_minute
from strongroom.base.errors import InvalidInput
from strongroom.base.logging import get_logger
from strongroom.drive import files as drive_files
from strongroom.drive import links as drive_links
from strongroom.drive import shares as drive_shares
from strongroom.drive.files import Names
from strongroom.drive.paths import join_path, split_path
from strongroom.identity import groups
from strongroom.identity.passwords import MIN_PASSWORD_LENGTH
from strongroom.identity.users import list_users
from strongroom.interfaces import webhook_events
from strongroom.interfaces.api.dependencies import (
    RuntimeDep,
    TenantDep,
    actor_of,
    parse_object_id,
)
from strongroom.interfaces.api.links import audited_link
from strongroom.interfaces.api.shares import audited_share
from strongroom.interfaces.web.auth import UserDep, WriterDep
from strongroom.interfaces.web.fields import FORM_LABELS, local_moment, whole_number
from strongroom.interfaces.web.pages import render
from strongroom.interfaces.web.routing import WebRoute, redirect
from strongroom.interfaces.web.security import base_path
from strongroom.runtime import Runtime
from strongroom.storage.db import TenantSession
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.events import Target, add_event
from strongroom.tenancy.models import utcnow
from strongroom.tenancy.modules import PUBLIC_LINKS, check_module
from strongroom.tenancy.time_zones import tenant_time_zone

log = get_logger(__name__)

router = APIRouter(route_class=WebRoute, include_in_schema=False)

EXPIRY_LABEL = FORM_LABELS["expires"]
PASSWORD_LABEL = FORM_LABELS["password"]
DOWNLOADS_LABEL = FORM_LABELS["max_downloads"]


@router.get("/sharing/{path:path}")
def sharing_page(
    path: str, request: Request, runtime: RuntimeDep, tenant: TenantDep, user: UserDep
) -> Response:
    names = _item_names(path)
    return _render(request, runtime, tenant, user.identity.user_id, names, new_link_url=None)


def _render(
    request: Request,
    runtime: Runtime,
    tenant: TenantInfo,
    owner_id: uuid.UUID,
    names: Names,
    new_link_url: str | None,
    status: int = 200,
) -> Response:
    with runtime.stores.session(tenant) as session:
        node = drive_files.access_node(session, owner_id, names)
        context = {
            "title": f"Share {node.name}",
            "path": join_path(names),
            "parent": join_path(names[:-1]),
            "item": {"name": node.name, "kind": node.kind},
            "recipients": _recipients(session, owner_id),
            "shares": _shares_of(session, owner_id, node.id),
            "links": _links_of(session, owner_id, node.id, tenant)
            if PUBLIC_LINKS in tenant.modules
            else [],
            "links_on": PUBLIC_LINKS in tenant.modules,
            "new_link_url": new_link_url,
            "time_zone": tenant.settings.time_zone,
            "section": "files",
        }
    return render(request, "sharing.html", context, status_code=status)


def _recipients(session: TenantSession, owner_id: uuid.UUID) -> list[dict[str, str]]:
    """Return the users and groups a share can name, as `user:ID` and `group:ID` choices."""
    people = [
        {"value": f"user:{user.id}", "label": user.display_name or user.email}
        for user in list_users(session, active_only=True)
        if user.id != owner_id
    ]
    teams = [
        {"value": f"group:{group.id}", "label": f"Group {group.name} ({count})"}
        for group, count in groups.list_groups(session)
    ]
    return people + teams


def _shares_of(
    session: TenantSession, owner_id: uuid.UUID, node_id: uuid.UUID
) -> list[dict[str, Any]]:
    names = {user.id: user.email for user in list_users(session)}
    group_names = {group.id: group.name for group, _count in groups.list_groups(session)}
    return [
        {
            "id": share.id,
            "recipient": names.get(share.user_id)
            if share.user_id
            else group_names.get(share.group_id),
            "kind": "user" if share.user_id else "group",
            "permission": share.permission,
        }
        for share in drive_shares.list_own_shares(session, owner_id)
        if share.node_id == node_id
    ]


def _links_of(
    session: TenantSession, owner_id: uuid.UUID, node_id: uuid.UUID, tenant: TenantInfo
) -> list[dict[str, Any]]:
    return [
        {
            "id": link.id,
            "prefix": link.prefix,
            "state": drive_links.state_of(link),
            "expires": link.expires_at,
            "has_password": link.password_hash is not None,
            "downloads_used": drive_links.downloads_used(link),
            "max_downloads": link.max_downloads,
        }
        for link in drive_links.list_links(session, owner_id)
        if link.node_id == node_id
    ]


def _item_names(path: str) -> Names:
    names = split_path(path)
    if not names:
        raise InvalidInput("the top folder cannot be shared; share a file or folder in it")
    return names


def _back(request: Request, names: Names, done: str) -> Response:
    return redirect(request, f"{base_path(request)}/sharing/{quote(join_path(names))}?done={done}")


# Shares -------------------------------------------------------------------------------


@router.post("/sharing/{path:path}/share")
def share(
    path: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    user: WriterDep,
    recipient: Annotated[str, Form(max_length=100)] = "",
    permission: Annotated[str, Form(max_length=10)] = "read",
) -> Response:
    names = _item_names(path)
    owner_id = user.identity.user_id
    with runtime.stores.session(tenant, write=True) as session:
        share = drive_shares.create_share(
            session, owner_id, names, _recipient(recipient), permission
        )
        add_event(
            session,
            tenant,
            "share_created",
            actor_of(request, owner_id),
            target=Target("share", share.id),
            new=audited_share(share),
        )
        node = drive_shares.shared_node(session, share)
    webhook_events.share_created(runtime, tenant, share, node, join_path(names), owner_id)
    return _back(request, names, "shared")


def _recipient(choice: str) -> drive_shares.Recipient:
    kind, _, text = choice.partition(":")
    if kind == "user":
        return drive_shares.Recipient(user_id=parse_object_id(text, "user"))
    if kind == "group":
        return drive_shares.Recipient(group_id=parse_object_id(text, "group"))
    raise InvalidInput("choose a user or a group to share with")


@router.post("/sharing/{path:path}/unshare/{share_id}")
def unshare(
    path: str,
    share_id: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    user: WriterDep,
) -> Response:
    names = _item_names(path)
    with runtime.stores.session(tenant, write=True) as session:
        share = drive_shares.revoke_share(
            session, user.identity.user_id, parse_object_id(share_id, "share")
        )
        add_event(
            session,
            tenant,
            "share_deleted",
            actor_of(request, user.identity.user_id),
            target=Target("share", share.id),
            old=audited_share(share),
        )
    return _back(request, names, "unshared")


# Public links -------------------------------------------------------------------------


@router.post("/sharing/{path:path}/link")
def create_link(
    path: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    user: WriterDep,
    password: Annotated[str, Form(max_length=1000)] = "",
    expires: Annotated[str, Form(max_length=40)] = "",
    max_downloads: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    check_module(tenant, PUBLIC_LINKS)
    names = _item_names(path)
    owner_id = user.identity.user_id
    with runtime.stores.session(tenant, write=True) as session:
        link, token = drive_links.create_link(
            session,
            owner_id,
            names,
            _link_password(password),
            _expiry(expires, tenant),
            _count(max_downloads),
            tenant.settings.link_max_expiry_days,
        )
        add_event(
            session,
            tenant,
            "link_created",
            actor_of(request, owner_id),
            target=Target("link", link.id),
            new=audited_link(link),
        )
    webhook_events.link_created(runtime, tenant, link, join_path(names), owner_id)
    url = f"{str(request.base_url).rstrip('/')}/s/{token}"
    return _render(request, runtime, tenant, owner_id, names, new_link_url=url, status=201)


def _expiry(text: str, tenant: TenantInfo) -> dt.datetime | None:
    """Read the expiry field, a time of the tenant's time zone, or None when it is empty.

    The checks repeat those of `links.check_expiry` in the form's words, so that
    the page names the field as the form labels it.
    """
    moment = local_moment(text, EXPIRY_LABEL, tenant_time_zone(tenant))
    if moment is None:
        return None
    as_entered = format_minute(moment)
    now = utcnow()
    if moment <= now:
        raise InvalidInput(f"{EXPIRY_LABEL} {as_entered} is in the past; choose a later date")
    longest = tenant.settings.link_max_expiry_days or drive_links.MAX_LIFETIME.days
    if moment - now > dt.timedelta(days=longest):
        raise InvalidInput(
            f"{EXPIRY_LABEL} {as_entered} is more than {longest} days away, the longest a link may "
            "last here; choose an earlier date"
        )
    return moment


def _link_password(text: str) -> str | None:
    """Read the optional password field: None when it is empty, an error when it is only spaces."""
    if not text:
        return None
    if not text.strip():
        raise InvalidInput(
            f"{PASSWORD_LABEL} contains only spaces; enter one of at least {MIN_PASSWORD_LENGTH} "
            "characters with letters, digits or symbols, or leave the field empty for no password"
        )
    return text


def _count(text: str) -> int | None:
    return whole_number(text, DOWNLOADS_LABEL, 1, drive_links.MAX_DOWNLOADS)


@router.post("/sharing/{path:path}/revoke-link/{link_id}")
def revoke_link(
    path: str,
    link_id: str,
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    user: WriterDep,
) -> Response:
    check_module(tenant, PUBLIC_LINKS)
    names = _item_names(path)
    with runtime.stores.session(tenant, write=True) as session:
        link = drive_links.revoke_link(
            session, user.identity.user_id, parse_object_id(link_id, "link")
        )
        add_event(
            session,
            tenant,
            "link_revoked",
            actor_of(request, user.identity.user_id),
            target=Target("link", link.id),
            old=audited_link(link),
        )
    return _back(request, names, "link-revoked")
