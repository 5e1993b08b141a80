"""Cookies, CSRF checks and the security headers of every web response.

CSRF uses synchronizer tokens. A signed-in page carries the session's token
(an HMAC of the session secret, see identity/web_sessions.py) in each form
and in the `X-CSRF-Token` header that htmx and our script send. The login
form, which comes before any session, carries a random token that must match
a cookie set with the form. Every unsafe request must also come from this
host when the browser reports where it came from (Origin, Sec-Fetch-Site).
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from strongroom.base.errors import Forbidden
from strongroom.runtime import Runtime

SESSION_COOKIE = "strongroom_session"
LOGIN_COOKIE = "strongroom_login"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# For file contents: a browser that renders one anyway runs nothing in it.
DOWNLOAD_POLICY = "default-src 'none'; sandbox; frame-ancestors 'none'"

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


class CsrfRejected(Forbidden):
    code = "csrf-rejected"
    title = "Form expired or sent from another site"


def add_security_headers(response: Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        if name.lower() not in response.headers:
            response.headers[name] = value
    if "cache-control" not in response.headers:
        # Pages show a user's files and settings: no shared or back-button cache keeps them.
        response.headers["Cache-Control"] = "no-store"


def base_path(request: Request) -> str:
    """Return the tenant's base path: `/t/{slug}`, or empty on the tenant's own host."""
    return request.scope.get("root_path", "")


def cookie_path(request: Request) -> str:
    return base_path(request) or "/"


def is_secure(request: Request, runtime: Runtime) -> bool:
    configured = runtime.settings.secure_cookies
    return configured if configured is not None else request.url.scheme == "https"


def set_cookie(
    response: Response, request: Request, runtime: Runtime, name: str, value: str,
    max_age: int | None = None,
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=cookie_path(request),
        httponly=True,
        samesite="lax",
        secure=is_secure(request, runtime),
    )


def clear_cookie(response: Response, request: Request, runtime: Runtime, name: str) -> None:
    response.delete_cookie(
        name, path=cookie_path(request), httponly=True, samesite="lax",
        secure=is_secure(request, runtime),
    )


def new_login_token() -> str:
    return secrets.token_urlsafe(32)


def check_same_origin(request: Request) -> None:
    """Reject an unsafe request that the browser reports as sent from another site."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise CsrfRejected("the request came from another site; open the page here and retry")
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc.lower() != (request.headers.get("host") or "").lower():
        raise CsrfRejected(
            f"the request came from {origin!r}, another site; open the page here and retry"
        )


async def submitted_token(request: Request) -> str | None:
    """Return the CSRF token of the request: its header, or the field of a form body."""
    token = request.headers.get(CSRF_HEADER)
    if token is not None:
        return token
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in FORM_TYPES:
        return None
    form = await request.form()
    value = form.get(CSRF_FIELD)
    return value if isinstance(value, str) else None


async def check_csrf(request: Request, expected: str) -> None:
    check_same_origin(request)
    given = await submitted_token(request)
    if not given or not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise CsrfRejected(
            "the form had no valid security token, because it expired or came from another "
            "page; reload the page and submit it again"
        )
