"""Checks and messages for JSON objects: keys their model does not define, and NUL characters."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def unknown_keys_message(unknown: Iterable[str], valid: Iterable[str], noun: str = "field") -> str:
    """Return the problem detail for unknown keys: it names each one and lists the valid ones.

    Silently ignoring a misspelt key would lose what the client meant, such as
    the expiry of a token sent as `expires` where the model reads another name.
    """
    names = list(unknown)
    plural = "s" if len(names) > 1 else ""
    return f"{', '.join(names)}: no such {noun}{plural}; use one of: {', '.join(valid)}"


def keys_holding_nul(data: Mapping[Any, Any]) -> list[str]:
    """Return the keys whose values have the NUL character (U+0000) in a string, at any depth.

    PostgreSQL cannot store U+0000 in text, and SQLite would store it unseen in
    names and addresses, so the API rejects it on both backends alike.
    """
    return [str(key) for key, value in data.items() if _holds_nul(key) or _holds_nul(value)]


def nul_message(keys: Iterable[str]) -> str:
    return f"{', '.join(keys)}: contains the NUL character (U+0000); remove it"


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_nul(item) for item in value)
    return False
