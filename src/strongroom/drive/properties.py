"""WebDAV dead properties: names and XML values that clients store on files and folders.

Properties belong to the node, not to its path, so a move keeps them and a
copy duplicates them. Like `strongroom.drive.files`, every function takes a
session bound to the tenant and leaves the commit to the caller.
"""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select

from strongroom.base.errors import InvalidInput
from strongroom.drive.models import DeadPropertyRow
from strongroom.storage.db import TenantSession

MAX_NAME_LENGTH = 1024
MAX_VALUE_BYTES = 64 * 1024
# Clients store a handful of properties per file; the limit keeps one client from
# filling the table.
MAX_PER_NODE = 200


def get_properties(session: TenantSession, node_id: uuid.UUID) -> dict[str, str]:
    rows = session.scalars(select(DeadPropertyRow).where(DeadPropertyRow.node_id == node_id))
    return {row.name: row.value for row in rows}


def get_property(session: TenantSession, node_id: uuid.UUID, name: str) -> str | None:
    return session.scalar(
        select(DeadPropertyRow.value).where(
            DeadPropertyRow.node_id == node_id, DeadPropertyRow.name == name
        )
    )


def check_property(name: str, value: str) -> None:
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(
            f"the property name has {len(name)} characters; use at most {MAX_NAME_LENGTH}"
        )
    size = len(value.encode("utf-8"))
    if size > MAX_VALUE_BYTES:
        raise InvalidInput(
            f"the value of property {name!r} is {size} bytes; values may have at most "
            f"{MAX_VALUE_BYTES}"
        )


def set_property(session: TenantSession, node_id: uuid.UUID, name: str, value: str) -> None:
    """Create or replace one property; raise InvalidInput when it or the node's count is too large."""
    check_property(name, value)
    row = session.get(DeadPropertyRow, (session.tenant_id, node_id, name))
    if row is not None:
        row.value = value
        session.flush()
        return
    if len(get_properties(session, node_id)) >= MAX_PER_NODE:
        raise InvalidInput(
            f"the item already has {MAX_PER_NODE} properties; remove some before adding more"
        )
    session.add(DeadPropertyRow(node_id=node_id, name=name, value=value))
    session.flush()


def remove_property(session: TenantSession, node_id: uuid.UUID, name: str) -> None:
    """Remove one property; removing a property that does not exist is no error (RFC 4918)."""
    session.execute(
        delete(DeadPropertyRow).where(
            DeadPropertyRow.node_id == node_id, DeadPropertyRow.name == name
        )
    )


def copy_properties(session: TenantSession, source_id: uuid.UUID, target_id: uuid.UUID) -> None:
    """Give the target the source's properties, replacing any it had."""
    session.execute(delete(DeadPropertyRow).where(DeadPropertyRow.node_id == target_id))
    for name, value in get_properties(session, source_id).items():
        session.add(DeadPropertyRow(node_id=target_id, name=name, value=value))
    session.flush()
