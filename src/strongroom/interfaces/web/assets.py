"""Static files of the UI, and each tenant's branding as a stylesheet and a logo.

Static files are read once from the package, so no request can name a file
outside the fixed set. URLs carry a version (`?v=`): a response to the
current version may be cached for a year, any other must be revalidated.
"""

from __future__ import annotations

import hashlib

import anyio
from fastapi import APIRouter, Request
from starlette.responses import Response

from strongroom.base.errors import NotFound
from strongroom.interfaces.api.dependencies import RuntimeDep, TenantDep
from strongroom.interfaces.web.pages import STATIC_DIR, web_state
from strongroom.interfaces.web.routing import WebRoute
from strongroom.tenancy.branding import get_logo

router = APIRouter(route_class=WebRoute, include_in_schema=False)

MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".LICENSE": "text/plain; charset=utf-8",
}
FOREVER = "public, max-age=31536000, immutable"

_files: dict[str, tuple[bytes, str]] = {
    path.name: (path.read_bytes(), MEDIA_TYPES.get(path.suffix, "application/octet-stream"))
    for path in STATIC_DIR.iterdir()
    if path.is_file() and path.suffix in MEDIA_TYPES
}


def _cached(request: Request, body: bytes, media_type: str, version: str) -> Response:
    etag = f'"{version}"'
    current = request.query_params.get("v") == version
    headers = {"ETag": etag, "Cache-Control": FOREVER if current else "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


@router.get("/static/{name}")
def static_file(name: str, request: Request) -> Response:
    found = _files.get(name)
    if found is None:
        raise NotFound(f"no static file is named {name!r}")
    body, media_type = found
    return _cached(request, body, media_type, web_state(request).static_versions[name])


def branding_css(colour: str, text_colour: str) -> bytes:
    return f":root {{ --brand: {colour}; --brand-text: {text_colour}; }}\n".encode("ascii")


def branding_version(colour: str, text_colour: str) -> str:
    return hashlib.sha256(branding_css(colour, text_colour)).hexdigest()[:12]


@router.get("/branding.css")
def tenant_stylesheet(request: Request, _runtime: RuntimeDep, tenant: TenantDep) -> Response:
    brand = web_state(request).branding.get(tenant)
    body = branding_css(brand.colour, brand.text_colour)
    version = branding_version(brand.colour, brand.text_colour)
    return _cached(request, body, "text/css; charset=utf-8", version)


@router.get("/branding/logo")
async def tenant_logo(request: Request, runtime: RuntimeDep, tenant: TenantDep) -> Response:
    found = await anyio.to_thread.run_sync(get_logo, runtime.catalog, tenant)
    if found is None:
        raise NotFound(f"tenant {tenant.slug!r} has no logo")
    data, media_type = found
    return _cached(request, data, media_type, hashlib.sha256(data).hexdigest()[:16])
