"""The WebDAV application: WsgiDAV over the drive, run in a2wsgi's threads, mounted at `{base}/dav/`.

WsgiDAV's own middleware is cut down to its request resolver, behind an
error responder of ours (`errors.py`) and the checks of `boundary.py`. Authentication is ours (`authentication.py`), and the directory
browser is left out, because its pages link their assets under one fixed
mount path, which cannot serve both URL forms of a tenant.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, NamedTuple

from a2wsgi import WSGIMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from wsgidav.dav_error import HTTP_BAD_REQUEST, HTTP_REQUEST_TIMEOUT, DAVError
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from strongroom.base.logging import get_logger
from strongroom.interfaces.webdav.authentication import BasicAuthentication, dav_request_of
from strongroom.interfaces.webdav.boundary import DavBoundary
from strongroom.interfaces.webdav.errors import ErrorResponder, StartResponse
from strongroom.interfaces.webdav.locks import DriveLockStorage, current_drive
from strongroom.interfaces.webdav.provider import DriveProvider, request_mount_path
from strongroom.runtime import Runtime

log = get_logger(__name__)

DAV_PREFIX = "/dav"
# The maximum number of WebDAV requests served at once. Each thread uses at most one
# database session at a time.
DAV_WORKERS = 16


class MetricsRoute(NamedTuple):
    """The route name that the request middleware reports in metrics and access logs."""

    path: str


DAV_ROUTE = MetricsRoute(f"{DAV_PREFIX}/{{path}}")


class ClientErrorFilter(logging.Filter):
    """A filter that drops WsgiDAV's tracebacks of DAVErrors other than 500, such as a full quota.

    They are expected outcomes, not faults, and their messages name file paths, which
    Strongroom keeps out of its logs. WsgiDAV's own info lines name paths too,
    so its logger passes warnings and errors only.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, DAVError) and error.value != 500)


def quiet_wsgidav_logs() -> None:
    logger = logging.getLogger("wsgidav")
    logger.setLevel(logging.WARNING)
    if not any(isinstance(existing, ClientErrorFilter) for existing in logger.filters):
        logger.addFilter(ClientErrorFilter())


def build_dav_app(runtime: Runtime) -> ASGIApp:
    quiet_wsgidav_logs()
    config = {
        "provider_mapping": {"/": DriveProvider()},
        "lock_storage": DriveLockStorage(runtime.redis),
        "property_manager": None,
        "middleware_stack": [ErrorResponder, RequestResolver],
        # WsgiDAV's authenticator is not in the stack: BasicAuthentication runs before it.
        "http_authenticator": {"accept_basic": False, "accept_digest": False},
        "block_size": runtime.settings.chunk_size,
        "suppress_version_info": True,
        "verbose": 1,
        # Leave Python's logging configuration to Strongroom.
        "logging": {"enable": False},
    }
    dav = DavBoundary(WsgiDAVApp(config))

    def with_mount_path(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        # a2wsgi runs each request in a copy of its context, so the value stays with it.
        request_mount_path.set(environ["SCRIPT_NAME"])
        # The provider maps every path to the user's own drive, so its locks are theirs too.
        current_drive.set(dav_request_of(environ).principal.user_id)
        return dav(environ, start_response)

    return WSGIMiddleware(BasicAuthentication(with_mount_path, runtime), workers=DAV_WORKERS)


class DavMount:
    """ASGI middleware that sends `/dav` and everything below it to the WebDAV application.

    It runs after the request middleware has resolved the tenant and moved a
    `/t/{slug}` prefix into `root_path`, so both URL forms arrive as `/dav/...`.
    """

    def __init__(self, app: ASGIApp, dav: ASGIApp, idle_timeout: float) -> None:
        self.app = app
        self.dav = dav
        self.idle_timeout = idle_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == DAV_PREFIX or path.startswith(DAV_PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        scope["route"] = DAV_ROUTE
        below = path[len(DAV_PREFIX) :] or "/"
        dav_scope = dict(scope, path=below, root_path=scope.get("root_path", "") + DAV_PREFIX)
        # a2wsgi builds PATH_INFO from `path`; a stale raw path would only mislead.
        dav_scope.pop("raw_path", None)
        await self.dav(dav_scope, self._guarded(receive), send)

    def _guarded(self, receive: Receive) -> Receive:
        """Wrap `receive` so that a silent or vanished client fails the request body.

        a2wsgi would wait forever for a silent client, holding a worker thread,
        and would hand WsgiDAV a disconnect as the end of the body, which would
        store a truncated file. The DAVError raised here reaches WsgiDAV through
        the body's read, so the upload is aborted and nothing is stored.
        """

        async def receive_body() -> Message:
            try:
                message = await asyncio.wait_for(receive(), self.idle_timeout)
            except TimeoutError:
                log.info("webdav_upload_idle_timeout", seconds=self.idle_timeout)
                raise DAVError(
                    HTTP_REQUEST_TIMEOUT,
                    f"no part of the request body arrived for {self.idle_timeout:g} seconds, "
                    "so it was discarded; send the body without pauses",
                ) from None
            if message["type"] == "http.disconnect":
                log.info("webdav_upload_cut_off")
                raise DAVError(HTTP_BAD_REQUEST, "the client disconnected before the body ended")
            return message

        return receive_body
