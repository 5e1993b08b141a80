"""Webhook subscriptions of a tenant: create, list, change and delete, and their secrets.

The secret signs deliveries, so the server must read it back: it is
encrypted with the tenant's current key, bound to the tenant and the webhook,
as second factors are. Deleting the tenant's keys makes it unreadable with
everything else. It is returned once, at creation and at each rotation.

A rotation may keep the replaced secret for an overlap, during which
deliveries carry a signature under each secret, so that receivers can switch
secrets without missing a delivery. Every replaced secret keeps signing until
the end of the overlap its rotation promised, even when later rotations
follow, so a webhook may have several. The replaced secrets and the ends of
their overlaps are stored inside the encrypted value, as a small JSON document
(`SigningSecrets`), so rotation needed no schema change. A value that is a
bare secret, as every webhook had before rotation existed, has no overlap.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import struct
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import delete, select

from strongroom.base.config import Settings
from strongroom.base.errors import Conflict, InvalidInput, NotFound
from strongroom.base.logging import get_logger
from strongroom.storage import crypto
from strongroom.storage.db import TenantSession
from strongroom.tenancy.keys import Keyring
from strongroom.tenancy.models import utcnow
from strongroom.webhooks.addresses import check_url
from strongroom.webhooks.models import EVENT_TYPES, DeliveryRow, WebhookRow
from strongroom.webhooks.signing import new_secret

log = get_logger(__name__)

# The maximum overlap of a rotation: a week lets every receiver be updated, even by hand.
MAX_OVERLAP = dt.timedelta(days=7)
# The maximum number of replaced secrets that sign at once, beside the current one, so a
# signature header has at most five signatures. A rotation that would need more is rejected.
MAX_RETIRED_SECRETS = 4


def _context(tenant_id: uuid.UUID, webhook_id: uuid.UUID, key_version: int) -> bytes:
    return (
        b"strongroom/webhook-secret/v1|"
        + tenant_id.bytes
        + webhook_id.bytes
        + struct.pack(">I", key_version)
    )


def _tenant_id(session: TenantSession) -> uuid.UUID:
    if session.tenant_id is None:
        raise InvalidInput("a webhook belongs to a tenant; open a tenant session")
    return session.tenant_id


def check_event_types(names: Iterable[str]) -> list[str]:
    """Return the event types without repeats, in their documented order; raise on unknown ones."""
    chosen = list(names)
    unknown = [name for name in chosen if name not in EVENT_TYPES]
    if unknown:
        raise InvalidInput(
            f"unknown event type {unknown[0]!r}; use one or more of: {', '.join(EVENT_TYPES)}"
        )
    if not chosen:
        raise InvalidInput(
            f"a webhook needs at least one event type; use any of: {', '.join(EVENT_TYPES)}"
        )
    return [name for name in EVENT_TYPES if name in chosen]


@dataclass(frozen=True)
class RetiredSecret:
    """A replaced secret, which signs until `until`: the end of the overlap its rotation promised."""

    secret: str = field(repr=False)
    until: dt.datetime


@dataclass(frozen=True)
class SigningSecrets:
    """The secrets of a webhook: its current one, and the replaced ones, newest first."""

    current: str = field(repr=False)
    retired: tuple[RetiredSecret, ...] = ()

    @property
    def previous_until(self) -> dt.datetime | None:
        """Return the end of the overlap of the secret that the current one replaced, if any."""
        return self.retired[0].until if self.retired else None

    def retired_in_use(self, now: dt.datetime) -> tuple[RetiredSecret, ...]:
        """Return the replaced secrets whose overlap has not ended at `now`, newest first."""
        return tuple(retired for retired in self.retired if now < retired.until)

    def in_use(self, now: dt.datetime) -> tuple[str, ...]:
        """Return the secrets that sign a delivery made at `now`, the current one first."""
        return (self.current, *(retired.secret for retired in self.retired_in_use(now)))

    def encode(self) -> bytes:
        if not self.retired:
            return self.current.encode("ascii")
        document = {
            "current": self.current,
            "retired": [
                {"secret": retired.secret, "until": retired.until.isoformat()}
                for retired in self.retired
            ],
        }
        return json.dumps(document, separators=(",", ":")).encode("ascii")

    @classmethod
    def decode(cls, plain: bytes) -> SigningSecrets:
        if not plain.startswith(b"{"):
            return cls(plain.decode("ascii"))
        document = json.loads(plain)
        if "previous" in document:
            # The form that kept one replaced secret, written before the list existed.
            until = dt.datetime.fromisoformat(document["previous_until"])
            return cls(document["current"], (RetiredSecret(document["previous"], until),))
        retired = tuple(
            RetiredSecret(item["secret"], dt.datetime.fromisoformat(item["until"]))
            for item in document["retired"]
        )
        return cls(document["current"], retired)


def create_webhook(
    session: TenantSession,
    keyring: Keyring,
    settings: Settings,
    created_by: uuid.UUID,
    url: str,
    event_types: Iterable[str],
    active: bool = True,
) -> tuple[WebhookRow, str]:
    """Store a new subscription and return it with its signing secret, which is shown only once."""
    tenant_id = _tenant_id(session)
    checked_url = check_url(url, settings)
    types = check_event_types(event_types)
    secret = new_secret()
    webhook_id = uuid.uuid4()
    wrapped, key_version = _seal(keyring, tenant_id, webhook_id, SigningSecrets(secret))
    webhook = WebhookRow(
        id=webhook_id,
        url=checked_url,
        event_types=types,
        wrapped_secret=wrapped,
        key_version=key_version,
        active=active,
        created_by=created_by,
    )
    session.add(webhook)
    session.flush()
    log.info("webhook_created", webhook_id=str(webhook_id), events=types)
    return webhook, secret


def signing_secrets_of(
    session: TenantSession, keyring: Keyring, webhook: WebhookRow
) -> SigningSecrets:
    """Decrypt the webhook's signing secrets."""
    tenant_id = _tenant_id(session)
    tenant_key = keyring.version(tenant_id, webhook.key_version)
    plain = crypto.unwrap_key(
        tenant_key.key, webhook.wrapped_secret, _context(tenant_id, webhook.id, webhook.key_version)
    )
    return SigningSecrets.decode(plain)


def rotate_secret(
    session: TenantSession,
    keyring: Keyring,
    webhook_id: uuid.UUID,
    overlap: dt.timedelta,
    now: dt.datetime | None = None,
) -> tuple[WebhookRow, str, SigningSecrets]:
    """Give a webhook a new signing secret; return it, shown only once, with the secrets in force.

    The current secret goes on signing, beside the new one, until `overlap` has
    passed. Secrets that earlier rotations replaced keep signing until the ends
    of their own overlaps. A zero overlap ends the current secret and every
    replaced one at once, as after a leak. Raises Conflict when
    MAX_RETIRED_SECRETS replaced secrets still sign, naming when the oldest stops.
    """
    if overlap < dt.timedelta(0) or overlap > MAX_OVERLAP:
        raise InvalidInput(
            f"an overlap of {overlap} is out of range; choose up to {MAX_OVERLAP.days * 24} hours"
        )
    moment = now or utcnow()
    tenant_id = _tenant_id(session)
    webhook = _lock_webhook(session, webhook_id)
    secrets = signing_secrets_of(session, keyring, webhook)
    secret = new_secret()
    if overlap:
        still_signing = secrets.retired_in_use(moment)
        _check_room_for_retired(webhook, still_signing)
        in_force = SigningSecrets(
            secret, (RetiredSecret(secrets.current, moment + overlap), *still_signing)
        )
    else:
        in_force = SigningSecrets(secret)
    webhook.wrapped_secret, webhook.key_version = _seal(keyring, tenant_id, webhook.id, in_force)
    webhook.modified_at = utcnow()
    session.flush()
    log.info(
        "webhook_secret_rotated",
        webhook_id=str(webhook.id),
        overlap_seconds=int(overlap.total_seconds()),
        retired_secrets=len(in_force.retired),
    )
    return webhook, secret, in_force


def _lock_webhook(session: TenantSession, webhook_id: uuid.UUID) -> WebhookRow:
    """Return the webhook locked until the transaction ends (on PostgreSQL), or raise NotFound.

    Two rotations at once would otherwise both read the same secrets, and the
    later write would drop the secret that the earlier one replaced.
    """
    webhook = session.get(WebhookRow, (session.tenant_id, webhook_id), with_for_update=True)
    if webhook is None:
        raise NotFound(f"no webhook has the id {str(webhook_id)!r}")
    return webhook


def _check_room_for_retired(webhook: WebhookRow, still_signing: tuple[RetiredSecret, ...]) -> None:
    """Raise Conflict when one more replaced secret would exceed MAX_RETIRED_SECRETS.

    Dropping the oldest instead would end it before the time its rotation promised.
    """
    if len(still_signing) < MAX_RETIRED_SECRETS:
        return
    retry_at = min(retired.until for retired in still_signing)
    error = Conflict(
        f"webhook {str(webhook.id)!r} already has {len(still_signing)} replaced secrets that still sign, "
        f"the most it keeps; rotate again after {retry_at.isoformat()}, when the oldest one "
        "stops, or rotate with overlap_hours 0 to stop every old secret at once",
        retry_at=retry_at.isoformat(),
    )
    wait = math.ceil((retry_at - utcnow()).total_seconds())
    error.headers["Retry-After"] = str(max(wait, 1))
    raise error


def _seal(
    keyring: Keyring, tenant_id: uuid.UUID, webhook_id: uuid.UUID, secrets: SigningSecrets
) -> tuple[bytes, int]:
    """Encrypt the secrets with the tenant's current key; return them with the key's version."""
    tenant_key = keyring.current(tenant_id)
    context = _context(tenant_id, webhook_id, tenant_key.version)
    return crypto.wrap_key(tenant_key.key, secrets.encode(), context), tenant_key.version


def list_webhooks(session: TenantSession) -> list[WebhookRow]:
    return list(session.scalars(select(WebhookRow).order_by(WebhookRow.created_at, WebhookRow.id)))


def access_webhook(session: TenantSession, webhook_id: uuid.UUID) -> WebhookRow:
    """Return the tenant's webhook, or raise NotFound; another tenant's id is not found either."""
    webhook = session.get(WebhookRow, (session.tenant_id, webhook_id))
    if webhook is None:
        raise NotFound(f"no webhook has the id {str(webhook_id)!r}")
    return webhook


def subscribers(session: TenantSession, event_type: str) -> list[WebhookRow]:
    """Return the active webhooks subscribed to the event type."""
    active = session.scalars(select(WebhookRow).where(WebhookRow.active.is_(True)))
    return [webhook for webhook in active if event_type in webhook.event_types]


def update_webhook(
    session: TenantSession,
    settings: Settings,
    webhook_id: uuid.UUID,
    *,
    url: str | None = None,
    event_types: Iterable[str] | None = None,
    active: bool | None = None,
) -> WebhookRow:
    """Change the given fields of a webhook; fields left as None keep their value."""
    webhook = access_webhook(session, webhook_id)
    if url is not None:
        webhook.url = check_url(url, settings)
    if event_types is not None:
        webhook.event_types = check_event_types(event_types)
    if active is not None:
        webhook.active = active
    webhook.modified_at = utcnow()
    session.flush()
    log.info("webhook_changed", webhook_id=str(webhook_id), active=webhook.active)
    return webhook


def delete_webhook(session: TenantSession, webhook_id: uuid.UUID) -> None:
    """Delete a webhook and its deliveries; jobs still queued for them find nothing and stop."""
    webhook = access_webhook(session, webhook_id)
    session.execute(delete(DeliveryRow).where(DeliveryRow.webhook_id == webhook.id))
    session.delete(webhook)
    session.flush()
    log.info("webhook_deleted", webhook_id=str(webhook_id))
