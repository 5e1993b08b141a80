"""Audit events: the one hook that every change a tenant's administrators may audit goes through.

Each event names the tenant, the actor, the action and the old and new
values. For now an event is a structured log line with `audit=true`. The
tenant's audit trail will store the same fields as rows behind this same
function, so its callers will not change.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from strongroom.base.logging import get_logger
from strongroom.tenancy.context import TenantInfo

log = get_logger(__name__)

# The actor of changes made with the `strongroom` command, which only the operator can run.
OPERATOR = "operator"


def user_actor(user_id: uuid.UUID, tenant: TenantInfo) -> str:
    """Return the actor string of a tenant's user: `user id@tenant slug`."""
    return f"{user_id}@{tenant.slug}"


def record_event(
    tenant: TenantInfo,
    action: str,
    actor: str,
    *,
    old: Mapping[str, Any] | None = None,
    new: Mapping[str, Any] | None = None,
) -> None:
    """Record an audit event of the tenant: `action` names what changed, such as settings_changed.

    Values must be JSON-serialisable and must never hold a secret, a file
    name or an e-mail address, because log lines are read by operators.
    """
    log.info(
        action,
        audit=True,
        tenant=tenant.slug,
        tenant_id=str(tenant.id),
        actor=actor,
        old=dict(old) if old is not None else None,
        new=dict(new) if new is not None else None,
    )
