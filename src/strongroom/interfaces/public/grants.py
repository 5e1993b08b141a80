"""Passwords of links and upload requests: checking them, remembering them, and the form's CSRF token.

A script sends the password with HTTP Basic and any user name, the empty
one included (`curl -u :PASSWORD URL`), on every request. A browser enters
it once in a form, and a right password sets an unlock cookie for that
link's path only, valid for `UNLOCK_LIFETIME`. The cookie contains its expiry and an HMAC over
the tenant, the link and the link's password hash, keyed by the tenant's
current key, so it cannot be forged, does not open another link, and stops
working when the password changes or the tenant's key is rotated.

Forms carry a CSRF token by double submit: a random value in a cookie of
the link's path (SameSite=Strict) and the same value in a hidden field.
Another site can make a browser post the form, but cannot read the cookie to
put its value in the field.

Wrong passwords are rate-limited per link and client address, in this process.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
import uuid

from fastapi import Request
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.responses import Response

from strongroom.base.errors import Forbidden, TooManyRequests
from strongroom.base.scoping import tenant_scoped_key
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo

UNLOCK_COOKIE = "sr_unlock"
CSRF_COOKIE = "sr_csrf"
UNLOCK_LIFETIME = 12 * 3600
CSRF_BYTES = 32
# Wrong passwords allowed per link, client address and minute, and per link and minute from
# all addresses together. Each costs an argon2id hash (about 50 ms and 64 MiB with the
# defaults), so the second limit bounds the work guessers cause, while a single guesser
# cannot lock the link's rightful visitors out with ten tries.
WRONG_PASSWORDS_PER_MINUTE = 10
WRONG_PASSWORDS_PER_LINK_PER_MINUTE = 100

# NOTE: the counters are in this process, so each replica of a deployment counts on its
# own. A shared rate-limit storage can replace MemoryStorage once the project has one.
_limiter = MovingWindowRateLimiter(MemoryStorage())
_wrong_password_limit = RateLimitItemPerMinute(WRONG_PASSWORDS_PER_MINUTE)
_wrong_password_link_limit = RateLimitItemPerMinute(WRONG_PASSWORDS_PER_LINK_PER_MINUTE)


def scope_path(request: Request, area: str, token: str) -> str:
    """Return the URL path of one link or upload request, under the tenant's base URL."""
    return f"{request.scope.get('root_path', '')}/{area}/{token}"


# Passwords ------------------------------------------------------------------------------


def basic_password(request: Request) -> str | None:
    """Return the password of an HTTP Basic header, whatever its user name, or None."""
    scheme, _, encoded = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _user, separator, password = decoded.partition(":")
    return password if separator else None


def check_attempts_left(tenant: TenantInfo, object_id: uuid.UUID, address: str) -> None:
    """Raise TooManyRequests while this address, or everyone together, tried too many wrong
    passwords on the link in the last minute."""
    by_address = _attempts_key(tenant, object_id, address)
    by_link = _attempts_key(tenant, object_id, "all")
    if not _limiter.test(_wrong_password_limit, by_address) or not _limiter.test(
        _wrong_password_link_limit, by_link
    ):
        raise TooManyRequests(
            "too many wrong passwords were tried here within a minute; wait a minute and try "
            "again",
            retry_after=60,
        )


def count_wrong_password(tenant: TenantInfo, object_id: uuid.UUID, address: str) -> None:
    _limiter.hit(_wrong_password_limit, _attempts_key(tenant, object_id, address))
    _limiter.hit(_wrong_password_link_limit, _attempts_key(tenant, object_id, "all"))


def _attempts_key(tenant: TenantInfo, object_id: uuid.UUID, who: str) -> str:
    # The address goes in as one key part, so it must not contain the separator.
    return tenant_scoped_key(tenant.id, "link-password", object_id.hex, who.replace("/", "_"))


# Unlock cookies -------------------------------------------------------------------------


def _unlock_signature(
    runtime: Runtime, tenant: TenantInfo, object_id: uuid.UUID, password_hash: str, expires: int
) -> str:
    tenant_key = runtime.keyring.current(tenant.id).key
    # A key of its own for this purpose, so that a signature is never valid for anything else.
    key = hmac.new(tenant_key, b"strongroom link unlock v1", hashlib.sha256).digest()
    message = f"{tenant.id}:{object_id}:{password_hash}:{expires}".encode()
    return base64.urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def grant_unlock(
    request: Request,
    response: Response,
    runtime: Runtime,
    tenant: TenantInfo,
    object_id: uuid.UUID,
    password_hash: str,
    path: str,
) -> None:
    """Set the cookie that unlocks one link or upload request for this browser."""
    expires = int(time.time()) + UNLOCK_LIFETIME
    signature = _unlock_signature(runtime, tenant, object_id, password_hash, expires)
    response.set_cookie(
        UNLOCK_COOKIE,
        f"{expires}.{signature}",
        max_age=UNLOCK_LIFETIME,
        path=path,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )


def is_unlocked(
    request: Request, runtime: Runtime, tenant: TenantInfo, object_id: uuid.UUID, password_hash: str
) -> bool:
    value = request.cookies.get(UNLOCK_COOKIE, "")
    expires_text, _, signature = value.partition(".")
    if not (expires_text.isascii() and expires_text.isdigit()) or int(expires_text) <= time.time():
        return False
    expected = _unlock_signature(runtime, tenant, object_id, password_hash, int(expires_text))
    return hmac.compare_digest(expected, signature)


# CSRF -----------------------------------------------------------------------------------


def csrf_token(request: Request) -> str:
    """Return the browser's CSRF token for this path, or a new one to set with `set_csrf_cookie`."""
    current = request.cookies.get(CSRF_COOKIE, "")
    if len(current) == 43 and current.replace("-", "").replace("_", "").isalnum():
        return current
    return secrets.token_urlsafe(CSRF_BYTES)


def set_csrf_cookie(request: Request, response: Response, token: str, path: str) -> None:
    response.set_cookie(
        CSRF_COOKIE,
        token,
        path=path,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def check_csrf(request: Request, submitted: str | None) -> None:
    """Raise Forbidden unless the form's token equals the cookie's."""
    expected = request.cookies.get(CSRF_COOKIE)
    if not expected or not submitted or not hmac.compare_digest(expected, submitted):
        raise Forbidden(
            "the form's security token is missing or does not match this browser's; "
            "reload the page and send the form again"
        )
