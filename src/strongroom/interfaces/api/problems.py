"""Errors as `application/problem+json` (RFC 9457), the one error format of the API."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import IntegrityError as DatabaseIntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response

from strongroom.base import log_context
from strongroom.base.errors import QuotaExceeded, ServerStorageFull, StrongroomError
from strongroom.base.logging import get_logger
from strongroom.storage.space import database_full, is_database_full

log = get_logger(__name__)

PROBLEM_TYPE = "urn:strongroom:problem:"
PROBLEM_MEDIA_TYPE = "application/problem+json"

# Added to pydantic's message for strict types, which reject what lax JSON parsing would
# have turned into a number or a flag, such as `true` for 1 or "3" for 3.
TYPE_HINTS = {
    "int_type": "; send a JSON integer such as 3, not a string, a fraction or true/false",
    "bool_type": "; send true or false, without quotes",
}

STATUS_TITLES = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    413: "Payload too large",
    500: "Internal error",
    503: "Service unavailable",
}


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body = {
        "type": PROBLEM_TYPE + code,
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    request_id = log_context.current().get("request_id")
    if request_id:
        body["request_id"] = request_id
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def error_response(error: StrongroomError) -> Response:
    return problem_response(
        error.status, error.code, error.title, error.detail, error.headers, **error.extra
    )


async def _strongroom_error(_request: Request, error: Exception) -> Response:
    assert isinstance(error, StrongroomError)
    # A full quota is no fault, and a full server storage was logged where it was found.
    if error.status >= 500 and not isinstance(error, (QuotaExceeded, ServerStorageFull)):
        log.error("request_failed", code=error.code, error=error.detail)
    return error_response(error)


async def _validation_error(_request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        message = f"{item.get('msg')}{TYPE_HINTS.get(item.get('type', ''), '')}"
        problems.append(f"{where}: {message}" if where else message)
    return problem_response(
        400, "invalid-input", "Invalid input", "; ".join(problems) or "the request is invalid"
    )


async def _http_error(_request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    detail = error.detail if isinstance(error.detail, str) else str(error.detail)
    if error.status_code == 404 and detail == "Not Found":
        detail = "no route matches this path; see /api/v1/openapi.json under the tenant's base URL"
    code = STATUS_TITLES.get(error.status_code, "error").lower().replace(" ", "-")
    return problem_response(
        error.status_code,
        code,
        STATUS_TITLES.get(error.status_code, "Error"),
        detail,
        dict(error.headers or {}),
    )


async def _concurrent_change(_request: Request, error: Exception) -> Response:
    # Routes that expect races retry them. Elsewhere, a unique constraint hit by two
    # requests at once means the other one won, so the client can retry.
    log.info("concurrent_change", error=str(error).splitlines()[0])
    return problem_response(
        409,
        "concurrent-change",
        "Concurrent change",
        "another request changed the same item at the same time; fetch it again and retry",
    )


async def _client_disconnected(_request: Request, _error: Exception) -> Response:
    # The client is gone, so this response is never read. The status 499 (nginx's
    # "client closed request") keeps the abort out of the 5xx counts and the error log.
    log.info("client_disconnected")
    return Response(status_code=499)


async def _database_error(_request: Request, error: Exception) -> Response:
    if is_database_full(error):
        # Tenant sessions translate this themselves. This catches the catalog's and raw
        # connections', whose transactions roll back as the error leaves their block.
        return error_response(database_full(error, None))
    log.error("database_unavailable", error=str(error).splitlines()[0])
    return problem_response(
        503,
        "database-unavailable",
        "Database unavailable",
        "the database did not answer in time; retry in a few seconds",
        {"Retry-After": "2"},
    )


async def _invalid_data(request: Request, error: Exception) -> Response:
    # PostgreSQL text cannot contain U+0000. JSON bodies and settings reject it first, so
    # this catches what other input, such as a web form, passes on to the database.
    if "NUL" in str(getattr(error, "orig", error)):
        log.info("nul_character_rejected")
        return problem_response(
            400,
            "invalid-input",
            "Invalid input",
            "a text value contains the NUL character (U+0000), which cannot be stored; remove it",
        )
    return await _unexpected_error(request, error)


async def _unexpected_error(_request: Request, error: Exception) -> Response:
    log.exception("unhandled_error", error_type=type(error).__name__)
    return problem_response(
        500,
        "internal",
        "Internal error",
        "the server failed to handle the request; the operator can find it in the logs "
        "by its request id",
    )


ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]

# Looked up along each exception's class hierarchy, so the most specific entry wins.
HANDLERS: dict[type[Exception], ExceptionHandler] = {
    StrongroomError: _strongroom_error,
    RequestValidationError: _validation_error,
    HTTPException: _http_error,
    OperationalError: _database_error,
    sqlite3.OperationalError: _database_error,
    PoolTimeout: _database_error,
    DatabaseIntegrityError: _concurrent_change,
    DataError: _invalid_data,
    ClientDisconnect: _client_disconnected,
    Exception: _unexpected_error,
}


def install_problem_handlers(app: FastAPI) -> None:
    for error_type, handler in HANDLERS.items():
        app.add_exception_handler(error_type, handler)


async def handle_error(request: Request, error: Exception) -> Response:
    """Turn an exception into its problem response, as the handlers installed on the app would."""
    for error_type in type(error).__mro__:
        handler = HANDLERS.get(error_type)
        if handler is not None:
            return await handler(request, error)
    raise error
