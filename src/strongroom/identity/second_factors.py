"""The second factor of a login: TOTP codes (RFC 6238) and one-time recovery codes.

The server must read the TOTP secret back to check codes, so it is
encrypted, not hashed: with the tenant's current key, bound to the tenant
and the user. Deleting the tenant's keys makes it unreadable with
everything else. A code
is accepted for the current 30-second step and one step either side, and
never twice: the step of the last accepted code is stored. Recovery codes
carry 80 random bits, so a fast hash is enough to store them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import uuid

import pyotp
from sqlalchemy import delete, select

from strongroom.base.errors import Conflict, InvalidInput
from strongroom.base.logging import get_logger
from strongroom.identity.models import RecoveryCodeRow, SecondFactorRow
from strongroom.storage import crypto
from strongroom.storage.db import TenantSession
from strongroom.tenancy.keys import Keyring
from strongroom.tenancy.models import utcnow

log = get_logger(__name__)

SECRET_BYTES = 20  # 160 bits, the length RFC 4226 recommends for HMAC-SHA1
STEP_SECONDS = 30
DIGITS = 6
# Steps accepted either side of the current one, for clocks that drift and slow typists.
ALLOWED_DRIFT = 1
RECOVERY_CODE_COUNT = 10
RECOVERY_CODE_BYTES = 10  # 80 bits, 16 characters of base32


def _context(tenant_id: uuid.UUID, user_id: uuid.UUID, key_version: int) -> bytes:
    return (
        b"strongroom/totp-secret/v1|"
        + tenant_id.bytes
        + user_id.bytes
        + struct.pack(">I", key_version)
    )


def _tenant_id(session: TenantSession) -> uuid.UUID:
    if session.tenant_id is None:
        raise InvalidInput("a second factor belongs to a tenant; open a tenant session")
    return session.tenant_id


def get_second_factor(session: TenantSession, user_id: uuid.UUID) -> SecondFactorRow | None:
    return session.scalars(select(SecondFactorRow).where(SecondFactorRow.user_id == user_id)).first()


def has_second_factor(session: TenantSession, user_id: uuid.UUID) -> bool:
    factor = get_second_factor(session, user_id)
    return factor is not None and factor.confirmed_at is not None


def users_with_second_factor(session: TenantSession) -> set[uuid.UUID]:
    rows = session.scalars(
        select(SecondFactorRow.user_id).where(SecondFactorRow.confirmed_at.is_not(None))
    )
    return set(rows)


def begin_enrolment(session: TenantSession, keyring: Keyring, user_id: uuid.UUID) -> str:
    """Store a new, unconfirmed TOTP secret for the user and return it in base32.

    Raises Conflict when the user already has a confirmed second factor.
    """
    existing = get_second_factor(session, user_id)
    if existing is not None and existing.confirmed_at is not None:
        raise Conflict("two-step verification is already on; turn it off before setting it up again")
    tenant_id = _tenant_id(session)
    secret = secrets.token_bytes(SECRET_BYTES)
    tenant_key = keyring.current(tenant_id)
    wrapped = crypto.wrap_key(tenant_key.key, secret, _context(tenant_id, user_id, tenant_key.version))
    if existing is not None:
        session.delete(existing)
        session.flush()
    session.add(
        SecondFactorRow(user_id=user_id, wrapped_secret=wrapped, key_version=tenant_key.version)
    )
    session.flush()
    return base64.b32encode(secret).decode("ascii")


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """Return the otpauth:// URI that authenticator apps read from a QR code."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=issuer
    )


def confirm_enrolment(
    session: TenantSession, keyring: Keyring, user_id: uuid.UUID, code: str
) -> list[str]:
    """Turn the second factor on once a code from it is right; return new recovery codes."""
    factor = get_second_factor(session, user_id)
    if factor is None or factor.confirmed_at is not None:
        raise Conflict("no two-step verification is being set up; start again from your account page")
    if not _accept_totp(factor, _secret(keyring, session, factor), code):
        raise InvalidInput(
            "the code is wrong or expired; type the 6 digits your app shows now"
        )
    factor.confirmed_at = utcnow()
    session.flush()
    log.info("second_factor_enabled", user_id=str(user_id))
    return replace_recovery_codes(session, user_id)


def verify_second_factor(
    session: TenantSession, keyring: Keyring, user_id: uuid.UUID, code: str
) -> bool:
    """Return True for a right TOTP code or an unused recovery code, which is then used up."""
    factor = get_second_factor(session, user_id)
    if factor is None or factor.confirmed_at is None:
        return False
    digits = "".join(code.split())
    if digits.isascii() and digits.isdigit() and len(digits) == DIGITS:
        accepted = _accept_totp(factor, _secret(keyring, session, factor), digits)
    else:
        accepted = _use_recovery_code(session, user_id, code)
    session.flush()
    return accepted


def remove_second_factor(session: TenantSession, user_id: uuid.UUID) -> None:
    session.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.user_id == user_id))
    session.execute(delete(SecondFactorRow).where(SecondFactorRow.user_id == user_id))
    log.info("second_factor_removed", user_id=str(user_id))


def replace_recovery_codes(session: TenantSession, user_id: uuid.UUID) -> list[str]:
    """Replace the user's recovery codes with new ones and return them; they are shown only once."""
    session.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.user_id == user_id))
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    for code in codes:
        session.add(RecoveryCodeRow(user_id=user_id, code_hash=_hash_recovery_code(code)))
    session.flush()
    return codes


def unused_recovery_codes(session: TenantSession, user_id: uuid.UUID) -> int:
    rows = session.scalars(
        select(RecoveryCodeRow.id).where(
            RecoveryCodeRow.user_id == user_id, RecoveryCodeRow.used_at.is_(None)
        )
    )
    return len(list(rows))


def _secret(keyring: Keyring, session: TenantSession, factor: SecondFactorRow) -> str:
    tenant_id = _tenant_id(session)
    tenant_key = keyring.version(tenant_id, factor.key_version)
    secret = crypto.unwrap_key(
        tenant_key.key,
        factor.wrapped_secret,
        _context(tenant_id, factor.user_id, factor.key_version),
    )
    return base64.b32encode(secret).decode("ascii")


def _accept_totp(factor: SecondFactorRow, secret: str, code: str) -> bool:
    digits = "".join(code.split())
    if not (digits.isascii() and digits.isdigit()) or len(digits) != DIGITS:
        return False
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = totp.timecode(utcnow())
    for step in range(current - ALLOWED_DRIFT, current + ALLOWED_DRIFT + 1):
        if factor.last_used_step is not None and step <= factor.last_used_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), digits):
            factor.last_used_step = step
            return True
    return False


def _new_recovery_code() -> str:
    text = base64.b32encode(secrets.token_bytes(RECOVERY_CODE_BYTES)).decode("ascii").lower()
    return "-".join(text[start : start + 4] for start in range(0, len(text), 4))


def _hash_recovery_code(code: str) -> str:
    normal = "".join(code.split()).replace("-", "").lower()
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()


def _use_recovery_code(session: TenantSession, user_id: uuid.UUID, code: str) -> bool:
    if len(code) > 64:
        return False
    row = session.scalars(
        select(RecoveryCodeRow).where(
            RecoveryCodeRow.user_id == user_id,
            RecoveryCodeRow.code_hash == _hash_recovery_code(code),
            RecoveryCodeRow.used_at.is_(None),
        )
    ).first()
    if row is None:
        return False
    row.used_at = utcnow()
    log.info("recovery_code_used", user_id=str(user_id))
    return True
