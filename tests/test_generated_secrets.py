"""Generated passwords and app passwords: exact length, and never a leading "-" for command lines."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from strongroom.identity import passwords
from strongroom.identity.passwords import generate_password, typeable_secret
from strongroom.tenancy.settings import PasswordPolicy


@pytest.fixture
def dash_first(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Make the first two draws start with "-" and the later ones with a letter, and count the draws."""
    draws: list[int] = []
    real = secrets.token_urlsafe

    def drawn(nbytes: int) -> str:
        draws.append(nbytes)
        text = real(nbytes)
        # A real draw starts with "-" once in 64, so the later ones are fixed too.
        return ("-" if len(draws) <= 2 else "a") + text[1:]

    monkeypatch.setattr(passwords.secrets, "token_urlsafe", drawn)
    yield draws


def test_typeable_secret_redraws_leading_dash(dash_first: list[int]) -> None:
    secret = typeable_secret(32)

    assert len(dash_first) == 3
    assert len(secret) == 32
    assert not secret.startswith("-")


def test_generated_password_never_starts_with_dash(dash_first: list[int]) -> None:
    password = generate_password()

    assert len(dash_first) == 3
    assert len(password) == 24
    assert not password.startswith("-")


def test_generated_password_follows_policy_length() -> None:
    policy = PasswordPolicy(min_length=40, require_symbol=True)

    password = generate_password(policy)

    assert len(password) == 40
    assert not password.startswith("-")
    assert any(character in "!#%+-=?@_~" for character in password)


def test_many_secrets_are_distinct_and_typeable() -> None:
    drawn = {typeable_secret(32) for _ in range(2000)}

    assert len(drawn) == 2000
    assert not any(secret.startswith("-") for secret in drawn)
