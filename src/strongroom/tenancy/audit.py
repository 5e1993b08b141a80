"""Reading a tenant's audit trail: filters, pages with a cursor, and the JSON form of an event.

Pages run newest first and an export runs oldest first. Both walk the
`(occurred_at, id)` index, so a page costs the same however deep it is, and
events written while a reader pages on neither repeat nor go missing.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import uuid
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Select, and_, or_, select

from strongroom.base.errors import InvalidInput
from strongroom.storage.db import TenantSession
from strongroom.tenancy.events import ACTIONS, ANONYMOUS_NAME, OPERATOR_NAME, AuditEventRow

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
EXPORT_BATCH = 500

# The filters' query parameters, which errors name unless a form gives its labels.
FILTER_NAMES = ("action", "actor", "since", "until")
ISO_HINT = "give an ISO 8601 time such as 2026-12-01T09:30:00+01:00"


@dataclass(frozen=True)
class AuditFilter:
    """The events to read: a field of None matches every event. `until` is exclusive."""

    action: str | None = None
    actor: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


@dataclass(frozen=True)
class Cursor:
    """The position after the last event of a page: its time and id."""

    occurred_at: dt.datetime
    id: uuid.UUID


@dataclass(frozen=True)
class Page:
    events: list[AuditEventRow]
    next_cursor: Cursor | None


# Parsing requests ---------------------------------------------------------------------


def parse_filter(
    zone: zoneinfo.ZoneInfo,
    action: str | None = None,
    actor: str | None = None,
    since: str | None = None,
    until: str | None = None,
    names: Mapping[str, str] | None = None,
) -> AuditFilter:
    """Check a filter's text values; raise InvalidInput naming the value that is wrong.

    A time without a UTC offset is read in `zone`, the tenant's time zone.
    Errors call each filter by its query parameter, or by its entry in `names`,
    so that a form can use the labels a person reads.
    """
    named = {name: name for name in FILTER_NAMES} | dict(names or {})
    parsed = AuditFilter(
        action=check_action(action, named["action"]) if action else None,
        actor=check_actor(actor, named["actor"]) if actor else None,
        since=parse_time(named["since"], since, zone) if since else None,
        until=parse_time(named["until"], until, zone) if until else None,
    )
    if parsed.since and parsed.until and parsed.since >= parsed.until:
        raise InvalidInput(
            f"{named['since']} {since!r} is not earlier than {named['until']} {until!r}; give "
            f"a {named['since']} time earlier than the {named['until']} time"
        )
    return parsed


def check_action(action: str, name: str = "action") -> str:
    if action not in ACTIONS:
        raise InvalidInput(
            f"{name} {action!r} is not an audit action; use one of: {', '.join(ACTIONS)}"
        )
    return action


def check_actor(actor: str, name: str = "actor") -> str:
    """Return the actor as the trail stores it: a user id in canonical form, operator or anonymous."""
    if actor in (OPERATOR_NAME, ANONYMOUS_NAME):
        return actor
    try:
        return str(uuid.UUID(actor))
    except ValueError:
        raise InvalidInput(
            f"{name} {actor!r} is neither a user id nor {OPERATOR_NAME!r} nor "
            f"{ANONYMOUS_NAME!r}; give one of those"
        ) from None


def parse_time(name: str, text: str, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{name} {text!r} is not a time; {ISO_HINT}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError:
        # Such as 0001-01-01 east of UTC, which would fall before year 1.
        raise InvalidInput(
            f"{name} {text!r} is out of range once converted to UTC; give a time between "
            "the years 2 and 9998"
        ) from None


def parse_limit(text: str | None) -> int:
    if text is None or text == "":
        return DEFAULT_PAGE_SIZE
    if not re.fullmatch(r"[0-9]{1,7}", text) or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise InvalidInput(
            f"limit {text!r} is not a number of events from 1 to {MAX_PAGE_SIZE}; give one"
        )
    return int(text)


def encode_cursor(cursor: Cursor) -> str:
    raw = f"{as_utc(cursor.occurred_at).isoformat()}|{cursor.id}".encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(text: str) -> Cursor:
    """Read a cursor that `encode_cursor` wrote, or raise InvalidInput."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        moment, _, event_id = raw.partition("|")
        return Cursor(as_utc(dt.datetime.fromisoformat(moment)), uuid.UUID(event_id))
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        raise InvalidInput(
            f"cursor {text[:100]!r} is not a cursor of this trail; pass the next_cursor of the "
            "previous page unchanged, or leave it out to start at the newest event"
        ) from None


# Reading ------------------------------------------------------------------------------


def list_events(
    session: TenantSession, chosen: AuditFilter, limit: int, after: Cursor | None = None
) -> Page:
    """Return up to `limit` events, newest first, from just after `after`."""
    query = _filtered(chosen)
    if after is not None:
        query = query.where(
            or_(
                AuditEventRow.occurred_at < after.occurred_at,
                and_(AuditEventRow.occurred_at == after.occurred_at, AuditEventRow.id < after.id),
            )
        )
    query = query.order_by(AuditEventRow.occurred_at.desc(), AuditEventRow.id.desc())
    rows = list(session.scalars(query.limit(limit + 1)))
    if len(rows) <= limit:
        return Page(rows, None)
    return Page(rows[:limit], cursor_after(rows[limit - 1]))


def read_batch(
    session: TenantSession, chosen: AuditFilter, after: Cursor | None, size: int = EXPORT_BATCH
) -> list[AuditEventRow]:
    """Return up to `size` events, oldest first, from just after `after`, for an export.

    An export reads each batch in a transaction of its own, so that no
    transaction stays open while a slow client reads. The cursor keeps the
    batches in order.
    """
    query = _filtered(chosen)
    if after is not None:
        query = query.where(
            or_(
                AuditEventRow.occurred_at > after.occurred_at,
                and_(AuditEventRow.occurred_at == after.occurred_at, AuditEventRow.id > after.id),
            )
        )
    query = query.order_by(AuditEventRow.occurred_at, AuditEventRow.id).limit(size)
    return list(session.scalars(query))


def cursor_after(row: AuditEventRow) -> Cursor:
    return Cursor(as_utc(row.occurred_at), row.id)


def _filtered(chosen: AuditFilter) -> Select[tuple[AuditEventRow]]:
    query = select(AuditEventRow)
    if chosen.action is not None:
        query = query.where(AuditEventRow.action == chosen.action)
    if chosen.actor is not None:
        query = query.where(AuditEventRow.actor == chosen.actor)
    if chosen.since is not None:
        query = query.where(AuditEventRow.occurred_at >= chosen.since)
    if chosen.until is not None:
        query = query.where(AuditEventRow.occurred_at < chosen.until)
    return query


def as_utc(moment: dt.datetime) -> dt.datetime:
    """Return the time in UTC; SQLite returns naive times for timezone-aware columns, in UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def event_json(row: AuditEventRow) -> dict[str, object]:
    """Return the event as the API and the export write it."""
    return {
        "id": str(row.id),
        "time": as_utc(row.occurred_at).isoformat(),
        "actor": row.actor,
        "action": row.action,
        "target": (
            {"type": row.target_type, "id": row.target_id} if row.target_type is not None else None
        ),
        "address": row.address,
        "old": row.old,
        "new": row.new,
    }
