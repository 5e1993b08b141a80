"""Messages for JSON objects with keys that their model does not define."""

from __future__ import annotations

from collections.abc import Iterable


def unknown_keys_message(unknown: Iterable[str], valid: Iterable[str], noun: str = "field") -> str:
    """Return the problem detail for unknown keys: it names each one and lists the valid ones.

    Silently ignoring a misspelt key would lose what the client meant, such as
    the expiry of a token sent as `expires` where the model reads another name.
    """
    names = list(unknown)
    plural = "s" if len(names) > 1 else ""
    return f"{', '.join(names)}: no such {noun}{plural}; use one of: {', '.join(valid)}"
