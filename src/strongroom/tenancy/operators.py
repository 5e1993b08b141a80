"""Operator API tokens: bearer secrets for `/api/v1/operator/...`, kept in the catalog.

A token is `sro_` and 43 characters of random base64url (256 bits). Only its
SHA-256 is stored, as for tenant tokens. The prefix differs from tenant
tokens' `sr_`, so neither kind is ever mistaken for the other. Operator
tokens reach platform figures such as usage, never a tenant's contents.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from strongroom.base.errors import InvalidInput, NotAuthenticated, NotFound
from strongroom.base.logging import get_logger
from strongroom.storage.db import writer_bind
from strongroom.tenancy.models import OperatorTokenRow, utcnow

log = get_logger(__name__)

TOKEN_PREFIX = "sro_"
# Writing last_used_at on every request would make each one a write, and a minute is precise
# enough.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_operator_token(engine: Engine, name: str) -> tuple[OperatorTokenRow, str]:
    """Create a token, and return its row and the secret, which is shown only once."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput(
            f"token name {name!r} is empty or longer than 200 characters; name who or what uses it"
        )
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = OperatorTokenRow(
        id=uuid.uuid4(), name=name, token_hash=hash_token(secret), prefix=secret[:11]
    )
    with Session(writer_bind(engine), expire_on_commit=False) as session, session.begin():
        session.add(row)
    log.info("operator_token_created", token_id=str(row.id))
    return row, secret


def authenticate_operator(engine: Engine, secret: str) -> OperatorTokenRow:
    """Return the token's row, or raise NotAuthenticated with one message for every failure."""
    failure = NotAuthenticated("the operator token is invalid or revoked")
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 100:
        raise failure
    with Session(engine, expire_on_commit=False) as session:
        row = session.scalars(
            select(OperatorTokenRow).where(OperatorTokenRow.token_hash == hash_token(secret))
        ).first()
    if row is None or row.revoked_at is not None:
        raise failure
    if row.last_used_at is None or utcnow() - _utc(row.last_used_at) > LAST_USED_RESOLUTION:
        _touch(engine, row.id)
    return row


def list_operator_tokens(engine: Engine) -> list[OperatorTokenRow]:
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(select(OperatorTokenRow).order_by(OperatorTokenRow.created_at)))


def revoke_operator_token(engine: Engine, token_id: uuid.UUID) -> OperatorTokenRow:
    """Revoke a token. It stops working at once, because operator tokens are not cached."""
    with Session(writer_bind(engine), expire_on_commit=False) as session, session.begin():
        row = session.get(OperatorTokenRow, token_id)
        if row is None:
            raise NotFound(
                f"no operator token has the id {token_id}; see `strongroom operator token list`"
            )
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            log.info("operator_token_revoked", token_id=str(token_id))
    return row


def _touch(engine: Engine, token_id: uuid.UUID) -> None:
    with Session(writer_bind(engine)) as session, session.begin():
        session.execute(
            update(OperatorTokenRow)
            .where(OperatorTokenRow.id == token_id)
            .values(last_used_at=utcnow())
        )


def _utc(moment: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes for timezone-aware columns; they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
