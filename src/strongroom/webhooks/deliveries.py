"""Delivering events to webhooks: the job that makes one attempt, retries, dead letters, replay.

Each attempt is its own job, `webhooks.deliver`, which carries the number of
attempts the delivery had when the job was enqueued. A job whose delivery is
no longer pending, or has moved on to another attempt, does nothing, so a job
that runs twice sends once more at most. After a failure the job enqueues the
next attempt after the delay that `webhook_retry_delays` gives for it. When
no delay is left, the delivery is `dead` until an admin replays it, which
starts a new round of attempts.

The HTTP request is made outside any transaction, because a slow receiver
must not hold a database connection or a SQLite write lock. An hourly sweep
enqueues again the pending deliveries whose job was lost.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from huey import crontab
from sqlalchemy import select, update

from strongroom.base import metrics
from strongroom.base.config import Settings
from strongroom.base.errors import Conflict, InvalidInput, NotFound
from strongroom.base.logging import get_logger
from strongroom.storage.db import TenantSession
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.jobs import NO_STORE, Job
from strongroom.tenancy.models import utcnow
from strongroom.tenancy.modules import WEBHOOKS
from strongroom.webhooks import sending
from strongroom.webhooks.addresses import BlockedAddress, resolve_target
from strongroom.webhooks.models import (
    DEAD,
    DELIVERED,
    DELIVERY_STATES,
    MAX_ERROR_LENGTH,
    PENDING,
    DeliveryRow,
    WebhookRow,
)
from strongroom.webhooks.signing import signature_header
from strongroom.webhooks.subscriptions import access_webhook, signing_secrets_of

if TYPE_CHECKING:
    from strongroom.runtime import Runtime

log = get_logger(__name__)

# Listings show only the newest deliveries; `retention.purge_deliveries` deletes old ones daily.
MAX_LISTED = 500
# A pending delivery this far past its next attempt has lost its job (see `sweep_stuck`).
STUCK_AFTER = dt.timedelta(minutes=15)
MAX_SWEPT = 1000


@dataclass(frozen=True)
class Attempt:
    """The request of one attempt, read from the database before it is sent."""

    delivery_id: uuid.UUID
    webhook_id: uuid.UUID
    attempt: int
    url: str
    secrets: tuple[str, ...] = field(repr=False)
    event_type: str
    payload: dict[str, Any]


# Listing and replay --------------------------------------------------------------------


def list_deliveries(
    session: TenantSession, webhook_id: uuid.UUID, state: str | None = None
) -> list[DeliveryRow]:
    """Return the webhook's latest deliveries, newest first, in one state if one is given."""
    access_webhook(session, webhook_id)
    query = select(DeliveryRow).where(DeliveryRow.webhook_id == webhook_id)
    if state is not None:
        if state not in DELIVERY_STATES:
            raise InvalidInput(
                f"unknown delivery state {state!r}; use one of: {', '.join(DELIVERY_STATES)}"
            )
        query = query.where(DeliveryRow.state == state)
    query = query.order_by(DeliveryRow.created_at.desc(), DeliveryRow.id).limit(MAX_LISTED)
    return list(session.scalars(query))


def access_delivery(
    session: TenantSession, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> DeliveryRow:
    """Return the webhook's delivery, or raise NotFound, also for another webhook's delivery."""
    access_webhook(session, webhook_id)
    delivery = session.get(DeliveryRow, (session.tenant_id, delivery_id))
    if delivery is None or delivery.webhook_id != webhook_id:
        raise NotFound(
            f"webhook {str(webhook_id)!r} has no delivery with the id {str(delivery_id)!r}"
        )
    return delivery


def replay_delivery(
    session: TenantSession, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> DeliveryRow:
    """Make a dead delivery pending again with a new round of attempts.

    The caller enqueues its first attempt once the session has committed,
    with `enqueue_attempt`.
    """
    delivery = access_delivery(session, webhook_id, delivery_id)
    if delivery.state != DEAD:
        raise Conflict(
            f"delivery {str(delivery_id)!r} is {delivery.state}; only dead deliveries can be "
            "replayed, and a pending one is still being tried"
        )
    webhook = access_webhook(session, webhook_id)
    if not webhook.active:
        raise Conflict(
            f"webhook {str(webhook_id)!r} is inactive; activate it (PATCH with active true) "
            "before replaying its deliveries"
        )
    delivery.state = PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = utcnow()
    session.flush()
    log.info("webhook_delivery_replayed", delivery_id=str(delivery_id), webhook_id=str(webhook_id))
    return delivery


def enqueue_attempt(
    runtime: Runtime, tenant: TenantInfo, delivery_id: uuid.UUID, attempt: int, delay: float = 0
) -> None:
    """Enqueue an attempt of a delivery, `delay` seconds from now."""
    runtime.jobs.enqueue(
        DELIVER, tenant.id, delay=delay or None, delivery_id=str(delivery_id), attempt=attempt
    )


# The job -------------------------------------------------------------------------------


def deliver(runtime: Runtime, tenant: TenantInfo, delivery_id: str, attempt: int) -> None:
    """Make attempt number `attempt` (from 0) of a delivery, and record or schedule what follows."""
    prepared = _prepare(runtime, tenant, uuid.UUID(delivery_id), attempt)
    if prepared is None:
        return
    outcome = _send(runtime.settings, prepared)
    _record(runtime, tenant, prepared, outcome)


def _prepare(
    runtime: Runtime, tenant: TenantInfo, delivery_id: uuid.UUID, attempt: int
) -> Attempt | None:
    """Read what the attempt sends; return None when there is nothing to send any more."""
    with runtime.stores.session(tenant, write=True) as session:
        delivery = session.get(DeliveryRow, (tenant.id, delivery_id))
        if delivery is None or delivery.state != PENDING or delivery.attempts != attempt:
            log.info("webhook_attempt_skipped", delivery_id=str(delivery_id), attempt=attempt)
            return None
        webhook = session.get(WebhookRow, (tenant.id, delivery.webhook_id))
        assert webhook is not None, "a delivery's webhook exists, by its foreign key"
        reason = _why_not_sent(tenant, webhook)
        if reason is not None:
            _give_up(delivery, reason)
            return None
        return Attempt(
            delivery_id=delivery.id,
            webhook_id=webhook.id,
            attempt=attempt,
            url=webhook.url,
            secrets=signing_secrets_of(session, runtime.keyring, webhook).in_use(utcnow()),
            event_type=delivery.event_type,
            payload=delivery.payload,
        )


def _why_not_sent(tenant: TenantInfo, webhook: WebhookRow) -> str | None:
    if WEBHOOKS not in tenant.modules:
        return "the webhooks module was off when the delivery was due; replay it once it is on"
    if not webhook.active:
        return "the webhook was inactive when the delivery was due; activate it and replay"
    return None


def _give_up(delivery: DeliveryRow, reason: str) -> None:
    delivery.state = DEAD
    delivery.next_attempt_at = None
    delivery.last_error = reason
    metrics.webhook_attempts.labels(DEAD).inc()
    log.info("webhook_delivery_dead", delivery_id=str(delivery.id), reason=reason)


def _send(settings: Settings, prepared: Attempt) -> sending.Outcome:
    body = json.dumps(prepared.payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
    timestamp = int(time.time())
    headers = {
        "X-Strongroom-Event": prepared.event_type,
        "X-Strongroom-Delivery": str(prepared.delivery_id),
        "X-Strongroom-Timestamp": str(timestamp),
        "X-Strongroom-Signature": signature_header(prepared.secrets, timestamp, body),
    }
    try:
        target = resolve_target(prepared.url, settings)
    except BlockedAddress as error:
        return sending.Outcome(None, str(error))
    return sending.post(target, body, headers, settings.webhook_timeout_seconds)


def _record(
    runtime: Runtime, tenant: TenantInfo, prepared: Attempt, outcome: sending.Outcome
) -> None:
    """Store the outcome, and enqueue the next attempt when one is left."""
    delays = runtime.settings.webhook_retry_schedule
    now = utcnow()
    values: dict[str, Any] = {
        "attempts": prepared.attempt + 1,
        "last_attempt_at": now,
        "last_status": outcome.status,
        "last_error": outcome.error[:MAX_ERROR_LENGTH] if outcome.error else None,
        "next_attempt_at": None,
    }
    delay = None
    if outcome.succeeded:
        values.update(state=DELIVERED, delivered_at=now)
        result = "delivered"
    elif prepared.attempt < len(delays):
        delay = delays[prepared.attempt]
        values["next_attempt_at"] = now + dt.timedelta(seconds=delay)
        result = "retrying"
    else:
        values["state"] = DEAD
        result = "dead"

    with runtime.stores.session(tenant, write=True) as session:
        changed = session.execute(
            update(DeliveryRow)
            .where(
                DeliveryRow.id == prepared.delivery_id,
                DeliveryRow.state == PENDING,
                DeliveryRow.attempts == prepared.attempt,
            )
            .values(**values)
        ).rowcount
    if not changed:
        # Deleted with its webhook, or taken over by a replay while the request ran.
        log.info("webhook_attempt_superseded", delivery_id=str(prepared.delivery_id))
        return
    metrics.webhook_attempts.labels(result).inc()
    log.info(
        "webhook_attempt",
        delivery_id=str(prepared.delivery_id),
        webhook_id=str(prepared.webhook_id),
        attempt=prepared.attempt + 1,
        outcome=result,
        status=outcome.status,
        error=outcome.error,
    )
    if delay is not None:
        enqueue_attempt(runtime, tenant, prepared.delivery_id, prepared.attempt + 1, delay)


# Stuck deliveries -----------------------------------------------------------------------


def schedule_sweeps(runtime: Runtime) -> int:
    """Enqueue a sweep for every tenant with a store and the webhooks module on; return how many."""
    tenants = [
        tenant
        for tenant in runtime.catalog.list_tenants()
        if tenant.status not in NO_STORE and WEBHOOKS in tenant.modules
    ]
    for tenant in tenants:
        runtime.jobs.enqueue(SWEEP, tenant.id)
    return len(tenants)


def sweep_stuck(runtime: Runtime, tenant: TenantInfo, now: dt.datetime | None = None) -> int:
    """Enqueue again the pending deliveries long overdue, and return how many there were.

    A delivery gets stuck when its job was lost: the queue was unreachable
    when the event or a retry was enqueued, or a worker was killed while the
    job ran. A job that is only late may then run twice, which sends the
    event twice at most, since receivers must expect that anyway.
    """
    now = now or utcnow()
    with runtime.stores.session(tenant) as session:
        stuck = session.execute(
            select(DeliveryRow.id, DeliveryRow.attempts)
            .where(DeliveryRow.state == PENDING, DeliveryRow.next_attempt_at < now - STUCK_AFTER)
            .order_by(DeliveryRow.next_attempt_at)
            .limit(MAX_SWEPT)
        ).all()
    for delivery_id, attempts in stuck:
        enqueue_attempt(runtime, tenant, delivery_id, attempts)
    if stuck:
        log.warning("webhook_deliveries_requeued", deliveries=len(stuck))
    return len(stuck)


# Failures of the database or the queue raise, so huey retries them. A receiver's failures
# do not raise, because the job retries them itself with the configured backoff.
DELIVER = Job("webhooks.deliver", deliver, retries=3, retry_delay=60)
SWEEP = Job("webhooks.sweep", sweep_stuck, retries=3, retry_delay=600)
SCHEDULE_SWEEPS = Job(
    "webhooks.schedule_sweeps",
    schedule_sweeps,
    per_tenant=False,
    schedule=crontab(minute="20"),
)
JOBS = (DELIVER, SWEEP, SCHEDULE_SWEEPS)
