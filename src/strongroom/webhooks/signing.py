"""The signature of a delivery: HMAC-SHA256 over the timestamp, a dot and the body.

Receivers compute `hmac_sha256(secret, f"{timestamp}.".encode() + body)` and
compare its hex digest with the `X-Strongroom-Signature` header after
`sha256=`, in constant time. Signing the timestamp too lets them reject a
captured delivery that is replayed later: they should refuse timestamps more
than a few minutes off their clock.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
SIGNATURE_SCHEME = "sha256"


def new_secret() -> str:
    """Return a new signing secret: 256 random bits, in URL-safe base64 after a marker prefix."""
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return the value of the `X-Strongroom-Signature` header for this body at this time."""
    message = str(timestamp).encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_SCHEME}={digest}"


def verify(secret: str, timestamp: int, body: bytes, header: str) -> bool:
    """Return True when the header is the signature of this body at this time."""
    return hmac.compare_digest(sign(secret, timestamp, body), header.strip())
