"""Strongroom errors at the WebDAV boundary: DAVError inside WsgiDAV, problem+json outside it."""

from __future__ import annotations

import http
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.exc import IntegrityError as DatabaseIntegrityError
from wsgidav.dav_error import HTTP_CONFLICT, DAVError

from strongroom.base.errors import StrongroomError
from strongroom.base.logging import get_logger
from strongroom.interfaces.api.problems import error_response

log = get_logger(__name__)

StartResponse = Callable[..., Any]


@contextmanager
def dav_errors() -> Iterator[None]:
    """Translate Strongroom errors into DAVError, which WsgiDAV turns into a response.

    The status stays the same: WebDAV's own 507 Insufficient Storage is the
    status of QuotaExceeded already. Any other exception becomes a 500 in
    WsgiDAV, as it would in the REST API.
    """
    try:
        yield
    except StrongroomError as error:
        raise DAVError(error.status, context_info=error.detail) from error
    except DatabaseIntegrityError as error:
        # Clients such as rclone send requests in parallel, and two of them may create the
        # same name at once. The loser learns of it at commit, on PostgreSQL.
        log.info("webdav_write_conflict", error=str(error.orig))
        raise DAVError(
            HTTP_CONFLICT, context_info="another request changed this path at the same time; retry"
        ) from error


def problem(
    error: StrongroomError, start_response: StartResponse, headers: dict[str, str] | None = None
) -> Iterable[bytes]:
    """Send the error as the REST API would, from the WSGI side of the WebDAV mount."""
    response = error_response(error)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    status = f"{error.status} {http.HTTPStatus(error.status).phrase}"
    start_response(
        status,
        [(name.decode("latin-1"), value.decode("latin-1")) for name, value in response.raw_headers],
    )
    return [response.body]
