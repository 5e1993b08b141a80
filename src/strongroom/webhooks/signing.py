"""The signature of a delivery: HMAC-SHA256 over the timestamp, a dot and the body.

Receivers compute `hmac_sha256(secret, f"{timestamp}.".encode() + body)` and
compare its hex digest with the `X-Strongroom-Signature` header after
`sha256=`, in constant time. Signing the timestamp too lets them reject a
captured delivery that is replayed later: they should refuse timestamps more
than a few minutes off their clock.

While rotated secrets overlap their successors, the header carries one
signature per secret in force, separated by commas, the newest secret's first
(`sha256=NEW, sha256=OLD`). Receivers split the header on commas and accept
a delivery when any of the signatures matches.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

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


def signature_header(signing_secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """Return the `X-Strongroom-Signature` header: a signature per secret, in the given order."""
    return ", ".join(sign(secret, timestamp, body) for secret in signing_secrets)


def verify(secret: str, timestamp: int, body: bytes, header: str) -> bool:
    """Return True when one of the header's signatures is that of this body at this time."""
    expected = sign(secret, timestamp, body)
    # Every signature is compared, so the time taken does not tell which one matched.
    matches = [hmac.compare_digest(expected, part.strip()) for part in header.split(",")]
    return any(matches)
