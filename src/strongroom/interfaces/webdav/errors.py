"""Strongroom errors at the WebDAV boundary: DAVError inside WsgiDAV, problem+json outside it."""

from __future__ import annotations

import http
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import IntegrityError as DatabaseIntegrityError
from wsgidav import util
from wsgidav.dav_error import (
    HTTP_CONFLICT,
    HTTP_INTERNAL_ERROR,
    HTTP_NO_CONTENT,
    HTTP_NOT_MODIFIED,
    DAVError,
    get_http_status_string,
)
from wsgidav.mw.base_mw import BaseMiddleware

from strongroom.base.errors import StrongroomError
from strongroom.base.logging import get_logger
from strongroom.interfaces.api.problems import error_response
from strongroom.storage.space import database_full, is_database_full

log = get_logger(__name__)

StartResponse = Callable[..., Any]

INTERNAL_DETAIL = (
    "the server failed to handle the request; the operator can find it in the logs "
    "by its request id"
)


@contextmanager
def dav_errors() -> Iterator[None]:
    """Translate Strongroom errors into DAVError, which WsgiDAV turns into a response.

    The status and the headers stay the same: WebDAV's own 507 Insufficient
    Storage (RFC 4918, section 11.5) is the status of QuotaExceeded and
    ServerStorageFull already, and a full database becomes the latter. Any
    other exception is logged with its traceback and becomes a 500 that does
    not mention it, because WsgiDAV writes the text of a DAVError's source
    exception into the response body.
    """
    try:
        yield
    except DAVError:
        raise
    except StrongroomError as error:
        raise as_dav_error(error) from error
    except DatabaseIntegrityError as error:
        # Clients such as rclone send requests in parallel, and two of them may create the
        # same name at once. The loser learns of it at commit, on PostgreSQL.
        log.info("webdav_write_conflict", error=str(error.orig))
        raise DAVError(
            HTTP_CONFLICT, context_info="another request changed this path at the same time; retry"
        ) from error
    except DBAPIError as error:
        if not is_database_full(error):
            raise unexpected(error) from None
        raise as_dav_error(database_full(error, None)) from error
    except Exception as error:  # noqa: BLE001 - logged, and sent as a 500 without its text
        raise unexpected(error) from None


def as_dav_error(error: StrongroomError) -> DAVError:
    """Return the DAVError with the status, detail and headers of a Strongroom error."""
    # A Bearer challenge would mislead WebDAV clients, which sign in with Basic.
    headers = [
        (name, value) for name, value in error.headers.items() if name.lower() != "www-authenticate"
    ]
    return DAVError(error.status, context_info=error.detail, add_headers=headers or None)


def unexpected(error: Exception) -> DAVError:
    """Log an exception that no rule expects, and return a 500 that keeps it out of the body."""
    log.error("webdav_unexpected_error", error_type=type(error).__name__, exc_info=error)
    return DAVError(HTTP_INTERNAL_ERROR, context_info=INTERNAL_DETAIL)


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


class ErrorResponder(BaseMiddleware):
    """WsgiDAV's ErrorPrinter, with two changes: no exception text in bodies, and an error event.

    WsgiDAV's printer writes `Source exception: ...` into the body of an
    error and leaves only its own log line. Here an exception that is not a
    DAVError, or that WsgiDAV wrapped into a 500, is logged as
    `webdav_unexpected_error` with its traceback, and no response body
    carries an exception's text.
    """

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        buffered = util.SubAppStartResponse()
        started = False
        try:
            body = self.next_app(environ, buffered)
            try:
                for chunk in body:
                    if not started:
                        start_response(
                            buffered.status, buffered.response_headers, buffered.exc_info
                        )
                        started = True
                    yield chunk
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
            if not started:
                start_response(buffered.status, buffered.response_headers, buffered.exc_info)
            return
        except DAVError as error:
            failure = error
            if error.value == HTTP_INTERNAL_ERROR and error.context_info != INTERNAL_DETAIL:
                # A 500 of WsgiDAV's own, or an exception it wrapped; ours were logged already.
                failure = unexpected(error.src_exception or error)
            # A 4xx keeps its status, such as a 400 for a body that is not XML, but not
            # the text of the exception behind it.
            failure.src_exception = None
        except Exception as error:  # noqa: BLE001 - logged, and sent as a 500 without its text
            failure = unexpected(error)
        if started:
            # The status has gone out, so only a cut connection shows the client the body is short.
            raise failure
        yield from _error_body(environ, failure, start_response)


def _error_body(
    environ: dict[str, Any], error: DAVError, start_response: StartResponse
) -> Iterator[bytes]:
    status = get_http_status_string(error)
    extra = list(error.add_headers or [])
    if error.value in (HTTP_NOT_MODIFIED, HTTP_NO_CONTENT):
        start_response(status, [("Content-Length", "0"), *extra])
        yield b""
        return
    content_type, body = error.get_response_page()
    # A HEAD response states the length of the body that a GET would have had.
    sent = body if error.add_body and environ.get("REQUEST_METHOD") != "HEAD" else b""
    length = len(body) if environ.get("REQUEST_METHOD") == "HEAD" else len(sent)
    start_response(
        status, [("Content-Type", content_type), ("Content-Length", str(length)), *extra]
    )
    yield sent
