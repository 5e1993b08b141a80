"""Rendering pages: the Jinja2 environment, the context every page gets, and notices.

Templates autoescape everything they print. Each page gets the tenant's base
path (links work under `/t/{slug}` and on the tenant's own host alike), its
branding, the signed-in user if any, and the CSRF token for its forms.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from strongroom.base.dates import format_minute
from strongroom.identity.web_sessions import WebIdentity, csrf_token_of
from strongroom.interfaces.web.security import base_path
from strongroom.runtime import Runtime
from strongroom.tenancy.branding import Branding, BrandingCache
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.rate_limits import RateLimit

STATIC_DIR = Path(__file__).parent / "static"

# Fixed messages a redirect can ask a page to show (`?done=renamed`). Only these
# can appear, so a crafted link cannot put words of its own on the page.
NOTICES = {
    "uploaded": "Upload finished.",
    "folder-created": "Folder created.",
    "renamed": "Renamed.",
    "moved": "Moved.",
    "deleted": "Moved to the trash. You can restore it from the trash.",
    "restored": "Restored to its folder.",
    "purged": "Deleted for good.",
    "emptied": "The trash is empty now.",
    "role-changed": "Role changed.",
    "status-changed": "Status changed.",
    "second-factor-reset": "Two-step verification was turned off for that user.",
    "second-factor-off": "Two-step verification is off.",
    "branding-saved": "Branding saved.",
    "shared": "Shared. They find it under Shared with me.",
    "unshared": "The share is removed; access stops with their next request.",
    "link-revoked": "The link is revoked; it answers 410 Gone from now on.",
    "version-restored": "That version's content is the newest version now.",
    "settings-saved": "Rules saved.",
    "modules-saved": "Modules saved.",
    "group-created": "Group created.",
    "group-renamed": "Group renamed.",
    "group-deleted": "Group deleted; its shares ended.",
    "member-added": "Member added.",
    "member-removed": "Member removed.",
    "password-set": "Your password is set. Log in with your e-mail address and that password.",
    "export-requested": "Export requested. It appears below as ready once its job has built it.",
    "export-deleted": "Export deleted.",
}


@dataclass(frozen=True)
class SignedIn:
    """The signed-in user of a request, with the session secret that its CSRF token comes from."""

    identity: WebIdentity
    secret: str = field(repr=False)

    @property
    def csrf_token(self) -> str:
        return csrf_token_of(self.secret)


@dataclass
class WebState:
    """State of the web UI that lasts as long as the application."""

    branding: BrandingCache
    login_by_address: RateLimit
    login_by_account: RateLimit
    static_versions: dict[str, str]


def build_state(runtime: Runtime) -> WebState:
    settings = runtime.settings
    return WebState(
        branding=BrandingCache(runtime.catalog, settings.tenant_cache_seconds),
        login_by_address=RateLimit(
            "login-address", settings.login_limit_per_address, settings.redis_url
        ),
        login_by_account=RateLimit(
            "login-account", settings.login_limit_per_account, settings.redis_url
        ),
        static_versions={
            path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            for path in STATIC_DIR.iterdir()
            if path.is_file()
        },
    )


def web_state(request: Request) -> WebState:
    return request.app.state.web


def format_size(size: int | None) -> str:
    if size is None:
        return ""
    amount = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{size} bytes" if unit == "bytes" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def format_time(moment: dt.datetime | None) -> str:
    if moment is None:
        return ""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return f"{format_minute(aware.astimezone(dt.UTC))} UTC"


def quote_path(path: str) -> str:
    return quote(path, safe="/")


_environment = Environment(
    loader=PackageLoader("strongroom.interfaces.web", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters["size"] = format_size
_environment.filters["time"] = format_time
_environment.filters["quote_path"] = quote_path


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
    signed_in: SignedIn | None = None,
    csrf_token: str | None = None,
) -> HTMLResponse:
    """Render a page of the tenant the request resolved; call it from a worker thread."""
    state = web_state(request)
    tenant: TenantInfo | None = request.scope.get("state", {}).get("tenant")
    signed_in = signed_in or getattr(request.state, "signed_in", None)
    branding: Branding | None = state.branding.get(tenant) if tenant is not None else None
    base = base_path(request)
    page = {
        "base": base,
        "tenant": tenant,
        "branding": branding,
        "user": signed_in.identity if signed_in else None,
        "csrf_token": csrf_token or (signed_in.csrf_token if signed_in else ""),
        "static": lambda name: f"{base}/static/{name}?v={state.static_versions.get(name, '')}",
        "notice": NOTICES.get(request.query_params.get("done", "")),
        **(context or {}),
    }
    html = _environment.get_template(template).render(page)
    return HTMLResponse(html, status_code=status_code)
