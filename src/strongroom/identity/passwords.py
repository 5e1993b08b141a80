"""Password hashing with argon2id, and generated passwords for new users."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from strongroom.base.errors import InvalidInput
from strongroom.tenancy.settings import PasswordPolicy, check_password

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024

# argon2-cffi's defaults follow RFC 9106's second recommended option (argon2id, 64 MiB,
# 3 passes), which costs about 50 ms here: enough against guessing, cheap for a login.
_hasher = PasswordHasher()


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"the password has {len(password)} characters; use at least {MIN_PASSWORD_LENGTH}"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"the password is longer than {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    check_password_strength(password)
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


_unknown_user_hashes: dict[int, str] = {}


def verify_for_unknown_user(password: str) -> bool:
    """Spend the time of a real password check and return False, for a login of no user.

    The hash is made once per hasher, so the check costs what a check of a
    real user's password costs.
    """
    known = _unknown_user_hashes.get(id(_hasher))
    if known is None:
        known = _unknown_user_hashes[id(_hasher)] = _hasher.hash(secrets.token_urlsafe(18))
    verify_password(known, password)
    return False


def typeable_secret(length: int) -> str:
    """Return `length` random URL-safe characters that do not start with "-".

    People paste generated passwords into command lines (litmus, davfs2, rclone), which read a
    leading "-" as an option. Skipping such draws costs less than one bit of entropy.
    """
    while True:
        # token_urlsafe gives about 1.3 characters per byte; the slice makes the length exact.
        secret = secrets.token_urlsafe(length)[:length]
        if not secret.startswith("-"):
            return secret


def generate_password(policy: PasswordPolicy | None = None) -> str:
    """Return a random password of at least 24 characters that meets the policy, if one is given."""
    length = max(24, policy.min_length if policy is not None else 0)
    while True:
        password = typeable_secret(length)
        if policy is None:
            return password
        if policy.require_symbol:
            password = password[:-1] + secrets.choice("!#%+-=?@_~")
        try:
            check_password(policy, password)
        except InvalidInput:
            continue
        return password
