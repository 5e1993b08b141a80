"""HTML pages of the public area, the security headers of every response there, and its errors.

Visitors of links and upload requests have no account, so the public area
answers browsers with pages and scripts with JSON or content. A browser is a
client whose Accept header lists text/html; a client whose Accept names JSON
gets JSON, and any other client the content itself where there is one.
Errors follow the same rule: an HTML page, or `application/problem+json` for
a client that asks for JSON.

The pages have no script at all, and their one style sheet is inline and
allowed by its hash in the Content-Security-Policy, so no other inline code
can run even if some text escaped the template's escaping.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import zoneinfo
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.responses import HTMLResponse, Response

from strongroom.base.dates import format_minute
from strongroom.base.errors import ServerStorageFull, StrongroomError
from strongroom.base.logging import get_logger
from strongroom.interfaces.api.problems import error_response, problem_response

log = get_logger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
STYLE = (TEMPLATES / "public.css").read_text(encoding="utf-8")
STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode("utf-8")).digest()).decode("ascii")

_environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

# On every response of the public area. The token is in the URL, so no page may send it
# on as a Referer, be cached by a proxy, be framed, or be indexed.
BASE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
    "Cross-Origin-Opener-Policy": "same-origin",
}
PAGE_POLICY = (
    f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# Content is never a page: a sandbox keeps an HTML file opened in the browser inert.
CONTENT_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox"


def secure(response: Response, content: bool = False) -> Response:
    """Add the security headers to a response of the public area."""
    for name, value in BASE_HEADERS.items():
        response.headers[name] = value
    response.headers["Content-Security-Policy"] = CONTENT_POLICY if content else PAGE_POLICY
    return response


def wants(request: Request) -> str:
    """Return "html" for a browser, "json" for a client that asks for JSON, else "any"."""
    accept = request.headers.get("accept", "").lower()
    if "text/html" in accept:
        return "html"
    if "json" in accept:
        return "json"
    return "any"


def render(
    request: Request,
    template: str,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Response:
    tenant = request.scope.get("state", {}).get("tenant")
    page = _environment.get_template(template).render(
        style=Markup(STYLE), tenant_name=tenant.name if tenant else "Strongroom", **context
    )
    return secure(HTMLResponse(page, status_code=status, headers=headers))


# Errors ---------------------------------------------------------------------------------

HEADINGS = {
    400: "This request is not valid",
    401: "A password is needed",
    403: "Not allowed",
    404: "Nothing here",
    405: "Not possible here",
    410: "No longer available",
    413: "The file is too large",
    429: "Too many attempts",
    507: "No room left",
}


def error_page(request: Request, error: StrongroomError) -> Response:
    """Return the error as a page for browsers and other clients, or as a problem for JSON clients."""
    # A full server storage was logged where it was found.
    if error.status >= 500 and not isinstance(error, ServerStorageFull):
        log.error("public_request_failed", code=error.code, error=error.detail)
    if wants(request) == "json":
        return secure(error_response(error))
    heading = HEADINGS.get(error.status, error.title)
    message = error.detail[:1].upper() + error.detail[1:] + "."
    return render(
        request,
        "message.html",
        status=error.status,
        headers=error.headers,
        heading=heading,
        message=message,
    )


class PublicRoute(APIRoute):
    """A route of the public area: its errors become pages, or problems for JSON clients."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_publicly(request: Request) -> Response:
            try:
                return await handle(request)
            except StrongroomError as error:
                return error_page(request, error)
            except RequestValidationError as error:
                detail = "; ".join(str(item.get("msg")) for item in error.errors())
                if wants(request) == "json":
                    return secure(problem_response(400, "invalid-input", "Invalid input", detail))
                return render(
                    request, "message.html", status=400, heading=HEADINGS[400], message=detail
                )

        return handle_publicly


# Formatting -----------------------------------------------------------------------------


def human_size(size: int) -> str:
    """Return a size in bytes for people: 512 bytes, 1.5 MB (powers of 1000, as file managers show)."""
    if size < 1000:
        return f"{size} bytes" if size != 1 else "1 byte"
    value = float(size)
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        value /= 1000
        if value < 999.5:
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{value:.0f} PB"


def local_time(moment: dt.datetime, zone: zoneinfo.ZoneInfo) -> str:
    """Return a time as people of the tenant read it: its local time and the zone's name."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    local = aware.astimezone(zone)
    return f"{format_minute(local)} ({zone.key})"
