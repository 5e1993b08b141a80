"""Checks that every kind of export applies to the filters of a request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from strongroom.base.errors import InvalidInput


def check_filter_names(kind: str, filters: Mapping[str, Any], known: tuple[str, ...]) -> None:
    """Raise InvalidInput for a filter the kind does not take, or a value that is not text."""
    unknown = sorted(set(filters) - set(known))
    if unknown:
        raise InvalidInput(
            f"{kind} exports take no filter {', '.join(map(repr, unknown))}; "
            f"their filters are: {', '.join(known)}"
        )
    for name, value in filters.items():
        if value is not None and not isinstance(value, str):
            raise InvalidInput(
                f"filter {name!r} must be a string, not {type(value).__name__}; give its "
                "value in quotes"
            )
