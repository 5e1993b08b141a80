"""The events that the interfaces emit to webhooks, with the data each one carries.

Each function runs after the change committed, in a worker thread of the
request, and calls `webhooks.events.emit`, which never raises. The data names
things by id and by path in the owner's drive, and never holds content, a
file's hash, a link's token or a password.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any, ParamSpec

from strongroom.base.logging import get_logger
from strongroom.drive import files as drive_files
from strongroom.drive.models import LinkRow, NodeRow, ShareRow
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo
from strongroom.webhooks.events import emit
from strongroom.webhooks.models import (
    FILE_CREATED,
    FILE_DELETED,
    FILE_UPDATED,
    LINK_CREATED,
    SHARE_CREATED,
)

log = get_logger(__name__)
P = ParamSpec("P")


def never_raises(function: Callable[P, None]) -> Callable[P, None]:
    """Log and swallow any error of an event function: the user's change succeeded regardless."""

    @functools.wraps(function)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            function(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - see the docstring
            log.error(
                "webhook_event_lost",
                function=function.__name__,
                error=str(error),
                error_type=type(error).__name__,
            )

    return guarded


@never_raises
def file_stored(
    runtime: Runtime,
    tenant: TenantInfo,
    node: NodeRow,
    version: int,
    size: int,
    actor_id: uuid.UUID,
    path: str | None = None,
) -> None:
    """Emit file.created for a file's first version and file.updated for later ones.

    Without `path`, the path is looked up, which uploads into a share need
    because their paths start at the shared folder.
    """
    event = FILE_CREATED if version == 1 else FILE_UPDATED
    data = {
        "file": {**_node(runtime, tenant, node, path), "size": size, "version": version},
        "actor_id": str(actor_id),
    }
    emit(runtime, tenant, event, data)


@never_raises
def file_trashed(
    runtime: Runtime,
    tenant: TenantInfo,
    node: NodeRow,
    actor_id: uuid.UUID,
    path: str | None = None,
) -> None:
    """Emit file.deleted for a file moved to the trash."""
    data = {"file": _node(runtime, tenant, node, path), "actor_id": str(actor_id)}
    emit(runtime, tenant, FILE_DELETED, data)


@never_raises
def share_created(
    runtime: Runtime,
    tenant: TenantInfo,
    share: ShareRow,
    node: NodeRow,
    path: str,
    actor_id: uuid.UUID,
) -> None:
    if share.user_id is not None:
        recipient = {"type": "user", "id": str(share.user_id)}
    else:
        recipient = {"type": "group", "id": str(share.group_id)}
    data = {
        "share": {"id": str(share.id), "permission": share.permission, "recipient": recipient},
        "node": {**_node(runtime, tenant, node, path), "type": node.kind},
        "actor_id": str(actor_id),
    }
    emit(runtime, tenant, SHARE_CREATED, data)


@never_raises
def link_created(
    runtime: Runtime, tenant: TenantInfo, link: LinkRow, path: str, actor_id: uuid.UUID
) -> None:
    data = {
        "link": {
            "id": str(link.id),
            "type": link.kind,
            "has_password": link.password_hash is not None,
            "expires_at": link.expires_at.isoformat() if link.expires_at else None,
            "max_downloads": link.max_downloads,
        },
        "node": {"id": str(link.node_id), "path": path, "owner_id": str(link.owner_id)},
        "actor_id": str(actor_id),
    }
    emit(runtime, tenant, LINK_CREATED, data)


def _node(runtime: Runtime, tenant: TenantInfo, node: NodeRow, path: str | None) -> dict[str, Any]:
    if path is None:
        with runtime.stores.session(tenant) as session:
            path = drive_files.path_of(session, node)
    return {"id": str(node.id), "path": path, "owner_id": str(node.owner_id)}
