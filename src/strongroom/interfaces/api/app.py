"""The ASGI application: platform routes at the root, the tenant REST API under /api/v1."""

from __future__ import annotations

import gc
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from strongroom import __version__
from strongroom.base import metrics
from strongroom.base.errors import NotAuthenticated, NotFound, SchemaOutOfDate
from strongroom.base.logging import flush_access_lines
from strongroom.interfaces.api import (
    account,
    administration,
    app_passwords,
    audit,
    directory,
    exports,
    files,
    folders,
    guests,
    links,
    operator,
    shares,
    trash,
    uploads,
    webhooks,
)
from strongroom.interfaces.api.dependencies import API_PREFIX, runtime_of
from strongroom.interfaces.api.hotpaths import HotPaths, routes_of
from strongroom.interfaces.api.housekeeping import Housekeeping
from strongroom.interfaces.api.middleware import RequestContextMiddleware, tenant_of_scope
from strongroom.interfaces.api.problems import install_problem_handlers, problem_response
from strongroom.interfaces.public import links as public_links
from strongroom.interfaces.public import uploads as public_uploads
from strongroom.interfaces.web.app import include_web
from strongroom.interfaces.webdav.app import DavMount, build_dav_app
from strongroom.runtime import Runtime, freeze_start_up_objects
from strongroom.tenancy import migrations

platform = APIRouter(include_in_schema=False)


@platform.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process serves requests. Touches nothing else, so a slow database
    does not get the process restarted."""
    return {"status": "ok"}


@platform.get("/readyz")
async def readyz(request: Request) -> Response:
    """Report readiness: the database responds with the expected schema and the blob store is writable."""
    runtime: Runtime = request.app.state.runtime
    checks = await anyio.to_thread.run_sync(_readiness_checks, runtime)
    failed = {name: result for name, result in checks.items() if result != "ok"}
    if failed:
        return problem_response(
            503,
            "not-ready",
            "Not ready",
            "; ".join(f"{name}: {result}" for name, result in failed.items()),
            checks=checks,
        )
    return JSONResponse({"status": "ready", "checks": checks})


def _readiness_checks(runtime: Runtime) -> dict[str, str]:
    checks = {}
    try:
        with runtime.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        migrations.check_up_to_date(runtime.engine)
        checks["database"] = "ok"
    except SchemaOutOfDate as exc:
        checks["database"] = exc.detail
    except Exception as exc:  # noqa: BLE001 - any failure means not ready, and says why
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        runtime.blobs.check_writable()
        checks["blob_store"] = "ok"
    except OSError as exc:
        checks["blob_store"] = f"not writable: {exc.strerror}"
    return checks


@platform.get("/metrics")
def prometheus_metrics(request: Request) -> Response:
    """Serve the process's metrics on the platform URL, to the holder of the metrics token if set.

    Under a tenant's URL the path does not exist: the heaviest-tenant gauges
    name tenants, which a tenant's users and visitors must not learn.
    """
    if tenant_of_scope(request.scope) is not None:
        raise NotFound("no route matches this path under a tenant; /metrics is on the platform URL")
    token = runtime_of(request).settings.metrics_token
    if token is not None:
        scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            raise NotAuthenticated("send the metrics token as `Authorization: Bearer TOKEN`")
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the background duties while the server serves; a test server may leave them off."""
    runtime: Runtime = app.state.runtime
    housekeeping = Housekeeping(runtime, run_jobs=app.state.run_jobs)
    housekeeping.start()
    freeze_start_up_objects()
    try:
        yield
    finally:
        gc.unfreeze()
        await anyio.to_thread.run_sync(housekeeping.stop)
        # The Redis connections of the rate limits belong to the server's event loop.
        await runtime.fair_share.aclose()
        flush_access_lines()


def create_app(runtime: Runtime, run_jobs: bool = False) -> FastAPI:
    """Build the application; with `run_jobs` it also runs the background jobs while it serves."""
    app = FastAPI(
        lifespan=lifespan,
        title="Strongroom",
        version=__version__,
        description="Multi-tenant, encrypted file storage. Every path here is relative to a "
        "tenant's base URL: `http://{slug}.{base domain}` or `/t/{slug}` on any host.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        # FastAPI's documentation pages load their scripts from a public CDN, which
        # would make every visitor's browser contact a third party.
        docs_url=None,
        redoc_url=None,
        # FastAPI would ask OpenTelemetry on every request whether a provider is set up.
        # Strongroom exports Prometheus metrics and JSON logs instead, and configures none.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = runtime
    app.state.run_jobs = run_jobs
    install_problem_handlers(app)

    app.include_router(platform)
    for module in (
        files,
        folders,
        trash,
        account,
        shares,
        directory,
        guests,
        administration,
        audit,
        exports,
        uploads,
        app_passwords,
        operator,
        webhooks,
    ):
        app.include_router(module.router)
    include_web(app, runtime)
    app.include_router(links.link_router)
    app.include_router(links.request_router)
    app.include_router(public_links.router)
    app.include_router(public_uploads.router)

    # Starlette runs the middleware added last first: the request context wraps the hot
    # paths, the tus layer gets paths without the tenant prefix, and WebDAV is wrapped too.
    app.add_middleware(uploads.TusProtocol)
    app.add_middleware(
        DavMount, dav=build_dav_app(runtime), idle_timeout=runtime.settings.upload_idle_timeout
    )
    app.add_middleware(HotPaths, routes=routes_of(folders.router, [folders.list_folder]))
    app.add_middleware(RequestContextMiddleware, runtime=runtime)
    return app
