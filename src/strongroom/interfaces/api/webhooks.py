"""Webhooks of the tenant, for its admins: subscriptions, their deliveries and replays.

The signing secret is in the response to the creation only, and a new one
in the response to each rotation. The deliveries listed with `state=dead`
are the dead-letter list, and replaying one of them starts a new round of
attempts.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import anyio
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field, StrictBool, StrictInt

from strongroom.interfaces.api.bodies import RequestBody
from strongroom.interfaces.api.dependencies import (
    API_PREFIX,
    AdminDep,
    RuntimeDep,
    TenantDep,
    parse_object_id,
    require_module,
)
from strongroom.interfaces.api.schemas import utc
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.events import record_event, user_actor
from strongroom.tenancy.modules import WEBHOOKS
from strongroom.webhooks import deliveries, subscriptions
from strongroom.webhooks.models import EVENT_TYPES, DeliveryRow, WebhookRow
from strongroom.webhooks.subscriptions import MAX_OVERLAP

router = APIRouter(prefix=API_PREFIX, tags=["webhooks"], dependencies=[require_module(WEBHOOKS)])

EVENTS_HELP = f"event types to send: {', '.join(EVENT_TYPES)}"
MAX_OVERLAP_HOURS = int(MAX_OVERLAP.total_seconds() // 3600)


class WebhookCreate(RequestBody):
    url: str = Field(description="where deliveries are POSTed: an http or https URL")
    events: list[str] = Field(description=EVENTS_HELP)
    active: StrictBool = Field(default=True, description="false saves it without sending")


class WebhookUpdate(RequestBody):
    url: str | None = None
    events: list[str] | None = Field(default=None, description=EVENTS_HELP)
    active: StrictBool | None = None


class WebhookOut(BaseModel):
    id: uuid.UUID
    url: str
    events: list[str]
    active: bool
    created_by: uuid.UUID
    created: dt.datetime
    modified: dt.datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(
        description="the key that signs every delivery (X-Strongroom-Signature), shown only "
        "here, so store it now"
    )


class SecretRotation(RequestBody):
    overlap_hours: StrictInt = Field(
        default=24,
        ge=0,
        le=MAX_OVERLAP_HOURS,
        description="hours during which deliveries are signed with the replaced secret too; 0 "
        "stops it and every older secret at once, as after a leak",
    )


class SecretRotated(BaseModel):
    webhook_id: uuid.UUID
    secret: str = Field(description="the new signing secret, shown only here, so store it now")
    previous_secret_expires: dt.datetime | None = Field(
        description="until when deliveries also carry a signature under the replaced secret; "
        "null when it stopped at once"
    )
    retired_secrets_expire: list[dt.datetime] = Field(
        description="until when each replaced secret that still signs goes on signing, newest "
        "first; earlier rotations' secrets keep the overlaps those rotations returned"
    )


class WebhookListing(BaseModel):
    items: list[WebhookOut]


class DeliveryOut(BaseModel):
    id: uuid.UUID
    webhook_id: uuid.UUID
    event_id: uuid.UUID
    event: str
    state: str = Field(description="pending, delivered or dead")
    attempts: int = Field(description="attempts since the delivery was made or last replayed")
    next_attempt: dt.datetime | None
    last_attempt: dt.datetime | None
    last_status: int | None = Field(description="the HTTP status of the last response, if any")
    last_error: str | None
    created: dt.datetime
    delivered: dt.datetime | None
    payload: dict[str, Any] = Field(description="the JSON document sent as the body")


class DeliveryListing(BaseModel):
    items: list[DeliveryOut]


# Subscriptions --------------------------------------------------------------------------


@router.post(
    "/webhooks", response_model=WebhookCreated, status_code=201, summary="Create a webhook (admins)"
)
def create_webhook(
    body: WebhookCreate, runtime: RuntimeDep, tenant: TenantDep, principal: AdminDep
) -> WebhookCreated:
    with runtime.stores.session(tenant, write=True) as session:
        webhook, secret = subscriptions.create_webhook(
            session,
            runtime.keyring,
            runtime.settings,
            principal.user_id,
            body.url,
            body.events,
            body.active,
        )
    _audit(runtime, tenant, principal.user_id, "webhook_created", new=_audited(webhook))
    return WebhookCreated(**_webhook_out(webhook).model_dump(), secret=secret)


@router.get("/webhooks", response_model=WebhookListing, summary="List the webhooks (admins)")
def list_webhooks(runtime: RuntimeDep, tenant: TenantDep, _principal: AdminDep) -> WebhookListing:
    with runtime.stores.session(tenant) as session:
        items = [_webhook_out(webhook) for webhook in subscriptions.list_webhooks(session)]
    return WebhookListing(items=items)


@router.get("/webhooks/{webhook_id}", response_model=WebhookOut, summary="One webhook (admins)")
def get_webhook(
    webhook_id: str, runtime: RuntimeDep, tenant: TenantDep, _principal: AdminDep
) -> WebhookOut:
    with runtime.stores.session(tenant) as session:
        webhook = subscriptions.access_webhook(session, parse_object_id(webhook_id, "webhook"))
        return _webhook_out(webhook)


@router.patch(
    "/webhooks/{webhook_id}",
    response_model=WebhookOut,
    summary="Change a webhook's URL, events or active flag (admins)",
)
def update_webhook(
    webhook_id: str,
    body: WebhookUpdate,
    runtime: RuntimeDep,
    tenant: TenantDep,
    principal: AdminDep,
) -> WebhookOut:
    with runtime.stores.session(tenant, write=True) as session:
        webhook = subscriptions.access_webhook(session, parse_object_id(webhook_id, "webhook"))
        old = _audited(webhook)
        subscriptions.update_webhook(
            session,
            runtime.settings,
            webhook.id,
            url=body.url,
            event_types=body.events,
            active=body.active,
        )
        out = _webhook_out(webhook)
    _audit(runtime, tenant, principal.user_id, "webhook_changed", old=old, new=_audited(webhook))
    return out


@router.delete(
    "/webhooks/{webhook_id}",
    status_code=204,
    summary="Delete a webhook and its deliveries (admins)",
)
def delete_webhook(
    webhook_id: str, runtime: RuntimeDep, tenant: TenantDep, principal: AdminDep
) -> Response:
    with runtime.stores.session(tenant, write=True) as session:
        webhook = subscriptions.access_webhook(session, parse_object_id(webhook_id, "webhook"))
        old = _audited(webhook)
        subscriptions.delete_webhook(session, webhook.id)
    _audit(runtime, tenant, principal.user_id, "webhook_deleted", old=old)
    return Response(status_code=204)


@router.post(
    "/webhooks/{webhook_id}/secret",
    response_model=SecretRotated,
    summary="Replace a webhook's signing secret, keeping the old one for an overlap (admins)",
    responses={
        409: {
            "description": f"{subscriptions.MAX_RETIRED_SECRETS} replaced secrets still sign; "
            "retry after `retry_at` (also in Retry-After), or rotate with overlap_hours 0"
        }
    },
)
def rotate_secret(
    webhook_id: str,
    runtime: RuntimeDep,
    tenant: TenantDep,
    principal: AdminDep,
    body: SecretRotation | None = None,
) -> SecretRotated:
    overlap = dt.timedelta(hours=(body or SecretRotation()).overlap_hours)
    with runtime.stores.session(tenant, write=True) as session:
        webhook, secret, in_force = subscriptions.rotate_secret(
            session, runtime.keyring, parse_object_id(webhook_id, "webhook"), overlap
        )
        ends = [retired.until for retired in in_force.retired]
        audited = {
            "webhook_id": str(webhook.id),
            "overlap_hours": int(overlap.total_seconds() // 3600),
            "previous_secret_expires": _iso(in_force.previous_until),
            "retired_secrets_expire": [_iso(end) for end in ends],
        }
    _audit(runtime, tenant, principal.user_id, "webhook_secret_rotated", new=audited)
    return SecretRotated(
        webhook_id=webhook.id,
        secret=secret,
        previous_secret_expires=in_force.previous_until,
        retired_secrets_expire=ends,
    )


def _iso(moment: dt.datetime | None) -> str | None:
    return utc(moment).isoformat() if moment is not None else None


# Deliveries ----------------------------------------------------------------------------


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=DeliveryListing,
    summary="List a webhook's latest deliveries, newest first; state=dead gives the dead letters",
)
def list_deliveries(
    webhook_id: str,
    runtime: RuntimeDep,
    tenant: TenantDep,
    _principal: AdminDep,
    state: str | None = Query(default=None, description="pending, delivered or dead"),
) -> DeliveryListing:
    with runtime.stores.session(tenant) as session:
        found = deliveries.list_deliveries(session, parse_object_id(webhook_id, "webhook"), state)
        return DeliveryListing(items=[_delivery_out(delivery) for delivery in found])


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/replay",
    response_model=DeliveryOut,
    status_code=202,
    summary="Send a dead delivery again, with a new round of attempts (admins)",
)
async def replay_delivery(
    webhook_id: str, delivery_id: str, runtime: RuntimeDep, tenant: TenantDep, principal: AdminDep
) -> DeliveryOut:
    webhook = parse_object_id(webhook_id, "webhook")
    delivery = parse_object_id(delivery_id, "webhook delivery")
    replayed = await anyio.to_thread.run_sync(_replay, runtime, tenant, webhook, delivery)
    _audit(
        runtime,
        tenant,
        principal.user_id,
        "webhook_delivery_replayed",
        new={"delivery_id": delivery_id},
    )
    return replayed


def _replay(
    runtime: Runtime, tenant: TenantInfo, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> DeliveryOut:
    with runtime.stores.session(tenant, write=True) as session:
        delivery = deliveries.replay_delivery(session, webhook_id, delivery_id)
        out = _delivery_out(delivery)
    deliveries.enqueue_attempt(runtime, tenant, delivery_id, 0)
    return out


# Shapes and audit ----------------------------------------------------------------------


def _webhook_out(webhook: WebhookRow) -> WebhookOut:
    return WebhookOut(
        id=webhook.id,
        url=webhook.url,
        events=list(webhook.event_types),
        active=webhook.active,
        created_by=webhook.created_by,
        created=utc(webhook.created_at),
        modified=utc(webhook.modified_at),
    )


def _delivery_out(delivery: DeliveryRow) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        webhook_id=delivery.webhook_id,
        event_id=delivery.event_id,
        event=delivery.event_type,
        state=delivery.state,
        attempts=delivery.attempts,
        next_attempt=utc(delivery.next_attempt_at) if delivery.next_attempt_at else None,
        last_attempt=utc(delivery.last_attempt_at) if delivery.last_attempt_at else None,
        last_status=delivery.last_status,
        last_error=delivery.last_error,
        created=utc(delivery.created_at),
        delivered=utc(delivery.delivered_at) if delivery.delivered_at else None,
        payload=delivery.payload,
    )


def _audited(webhook: WebhookRow) -> dict[str, Any]:
    """Return the audited fields of a webhook, without its URL, whose query may carry a token."""
    return {
        "webhook_id": str(webhook.id),
        "events": list(webhook.event_types),
        "active": webhook.active,
    }


def _audit(
    runtime: Runtime, tenant: TenantInfo, user_id: uuid.UUID, action: str, **values: Any
) -> None:
    record_event(runtime.stores, tenant, action, user_actor(user_id), **values)
