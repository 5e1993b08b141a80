"""The route class of every web page: HTML error pages, login redirects and security headers.

The API returns errors as problem JSON. A person in a browser needs a
page instead, so web routes catch the same error tree here and render it,
and send anyone not signed in to the login page.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

import anyio
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response

from strongroom.base.errors import ServerStorageFull, StrongroomError
from strongroom.base.logging import get_logger
from strongroom.interfaces.web.fields import FORM_LABELS, describe_errors
from strongroom.interfaces.web.pages import render
from strongroom.interfaces.web.security import add_security_headers, base_path

log = get_logger(__name__)


class LoginRequired(Exception):
    """The page needs a signed-in user and the request has none (or one still owing a code)."""

    def __init__(self, second_factor: bool = False) -> None:
        super().__init__("log in first")
        self.second_factor = second_factor


def redirect(request: Request, location: str, status_code: int = 303) -> Response:
    """Send the browser to `location`; htmx requests get HX-Redirect, for a full page load."""
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": location})
    return RedirectResponse(location, status_code=status_code)


def login_redirect(request: Request, second_factor: bool) -> Response:
    base = base_path(request)
    if second_factor:
        return redirect(request, f"{base}/login/second-factor")
    # The middleware moved `/t/{slug}` out of the path into root_path.
    wanted = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        wanted = f"{base}/files/"
    return redirect(request, f"{base}/login?next={quote(wanted, safe='/')}")


def error_page(request: Request, status: int, title: str, detail: str) -> Response:
    return render(
        request, "error.html", {"title": title, "detail": detail, "status": status}, status
    )


class WebRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except LoginRequired as required:
                response = login_redirect(request, required.second_factor)
            except ClientDisconnect:
                raise
            except Exception as error:  # noqa: BLE001 - every error gets a page, never JSON
                response = await anyio.to_thread.run_sync(_error_response, request, error)
            add_security_headers(response)
            return response

        return handle


def _error_response(request: Request, error: Exception) -> Response:
    if isinstance(error, StrongroomError):
        # A full server storage was logged where it was found.
        if error.status >= 500 and not isinstance(error, ServerStorageFull):
            log.error("page_failed", code=error.code, error=error.detail)
        response = error_page(request, error.status, error.title, error.detail)
        for name, value in error.headers.items():
            if name.lower() != "www-authenticate":
                response.headers[name] = value
        return response
    if isinstance(error, RequestValidationError):
        detail = describe_errors(_by_field_name(error.errors()), FORM_LABELS)
        return error_page(request, 400, "Invalid input", detail)
    if isinstance(error, HTTPException):
        return error_page(request, error.status_code, "Error", str(error.detail))
    log.exception("page_failed_unexpectedly", error_type=type(error).__name__)
    return error_page(
        request,
        500,
        "Internal error",
        "the server failed to show this page; the operator can find it in the logs by its "
        "request id",
    )


def _by_field_name(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Locate each error by its form field's name alone, the key of `FORM_LABELS`."""
    return [{**error, "loc": tuple(error.get("loc", ("?",)))[-1:]} for error in errors]
