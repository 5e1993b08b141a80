"""Emitting a tenant's events to its webhooks, after the change that caused them committed.

`emit` writes one pending delivery per active webhook subscribed to the
event, commits them, and enqueues one attempt per delivery. It does nothing
while the tenant's webhooks module is off. It logs its failures instead of
raising them, so that a change the user made is not reported as failed
because of its webhooks. Only an unknown event type, a mistake in the
calling code, raises ValueError. An event
that could not be recorded is logged and lost. A delivery that was recorded
but whose job could not be enqueued stays pending until the hourly sweep
(`deliveries.sweep_stuck`) enqueues it again.

A payload names what changed by ids and paths of the tenant, never by
content, and never contains a secret:

    {"id": EVENT_ID, "type": "file.created", "created": ISO_8601_UTC,
     "tenant": {"id": ..., "slug": ...}, "data": {...}}
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from strongroom.base.logging import get_logger
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.models import utcnow
from strongroom.tenancy.modules import WEBHOOKS
from strongroom.webhooks.deliveries import enqueue_attempt
from strongroom.webhooks.models import EVENT_TYPES, PENDING, DeliveryRow
from strongroom.webhooks.subscriptions import subscribers

if TYPE_CHECKING:
    from strongroom.runtime import Runtime

log = get_logger(__name__)


def emit(
    runtime: Runtime, tenant: TenantInfo, event_type: str, data: Mapping[str, Any]
) -> list[uuid.UUID]:
    """Record and enqueue the event's deliveries, and return their ids.

    Failures are logged, not raised. Only an unknown event type, a mistake in
    the caller's code, raises ValueError. `data` must be JSON-serialisable:
    ids as strings, paths, sizes.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}; use one of: {', '.join(EVENT_TYPES)}")
    if WEBHOOKS not in tenant.modules:
        return []
    try:
        deliveries = _record(runtime, tenant, event_type, data)
    except Exception as error:  # noqa: BLE001 - the user's change succeeded, whatever happens here
        log.error(
            "webhook_event_lost",
            event_type=event_type,
            error=str(error),
            error_type=type(error).__name__,
        )
        return []
    for delivery_id in deliveries:
        try:
            enqueue_attempt(runtime, tenant, delivery_id, 0)
        except Exception as error:  # noqa: BLE001 - as above; the delivery stays pending
            log.error(
                "webhook_delivery_not_enqueued",
                delivery_id=str(delivery_id),
                error=str(error),
                error_type=type(error).__name__,
            )
    return deliveries


def _record(
    runtime: Runtime, tenant: TenantInfo, event_type: str, data: Mapping[str, Any]
) -> list[uuid.UUID]:
    with runtime.stores.session(tenant) as session:
        webhooks = subscribers(session, event_type)
    if not webhooks:
        return []
    now = utcnow()
    event_id = uuid.uuid4()
    payload = {
        "id": str(event_id),
        "type": event_type,
        "created": now.isoformat(),
        "tenant": {"id": str(tenant.id), "slug": tenant.slug},
        "data": dict(data),
    }
    rows = [
        DeliveryRow(
            id=uuid.uuid4(),
            webhook_id=webhook.id,
            event_id=event_id,
            event_type=event_type,
            payload=payload,
            state=PENDING,
            attempts=0,
            next_attempt_at=now,
        )
        for webhook in webhooks
    ]
    with runtime.stores.session(tenant, write=True) as session:
        session.add_all(rows)
    log.info("webhook_event", event_type=event_type, event_id=str(event_id), deliveries=len(rows))
    return [row.id for row in rows]
