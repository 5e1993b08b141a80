"""The fields every log line of a request or a job carries: request id, tenant, actor.

They live in one context variable holding a mapping, so a request task, the
tasks it starts and the worker threads that copy its context all see them.
A bind sets a new mapping and never changes the old one in place, so a field
bound in a child context stays out of its parent, as with any context
variable.

structlog's `contextvars` module keeps one variable per field, and clearing
or reading them scans every context variable of the context. The request
middleware does both on every request, so one variable is cheaper.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping, MutableMapping
from types import MappingProxyType
from typing import Any

_EMPTY: Mapping[str, Any] = MappingProxyType({})

_fields: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "strongroom_log_fields", default=_EMPTY
)


def bind(**fields: Any) -> None:
    """Add `fields` to every later log line of the current context."""
    _fields.set({**_fields.get(), **fields})


def clear() -> None:
    """Drop every field of the current context, as a new request starts."""
    _fields.set(_EMPTY)


def current() -> Mapping[str, Any]:
    """Return the fields of the current context; the mapping must not be changed."""
    return _fields.get()


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add `fields` for the duration of the block, then restore the fields before it."""
    token = _fields.set({**_fields.get(), **fields})
    try:
        yield
    finally:
        _fields.reset(token)


def merge_fields(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: put the context's fields in the event, under the event's own keys."""
    fields = _fields.get()
    if not fields:
        return event
    merged = dict(fields)
    merged.update(event)
    return merged
