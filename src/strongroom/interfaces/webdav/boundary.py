"""Checks of a WebDAV request before WsgiDAV handles it, and the one Date header of its response.

WsgiDAV sends no proper response of its own for a path with a '..' name, for a change
of the drive's root (its parent lookup fails with an AttributeError), or
for a Destination that `destinations.py` rejects. These get a problem+json
response here, as the REST API would give, and never reach WsgiDAV.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from strongroom.base.errors import Forbidden, StrongroomError
from strongroom.base.logging import get_logger
from strongroom.drive.paths import split_path
from strongroom.interfaces.webdav.destinations import check_destination
from strongroom.interfaces.webdav.errors import StartResponse, problem

log = get_logger(__name__)

# Methods that would delete, replace or copy the resource at the request's path.
ROOT_CHANGE_ERRORS = {
    "DELETE": "the root folder of a drive cannot be deleted; delete the files and folders in it",
    "MOVE": "the root folder of a drive cannot be moved; move the files and folders in it",
    "COPY": "the root folder of a drive cannot be copied; copy the files and folders in it",
}
ROOT_DESTINATION = (
    "the Destination is the root folder of the drive, which nothing can replace; "
    "name a file or folder inside it"
)


class DavBoundary:
    """WSGI middleware between the authentication and WsgiDAV."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            self._check(environ)
        except StrongroomError as error:
            log.info("webdav_request_rejected", status=error.status, code=error.code)
            return problem(error, single_date(start_response))
        return self.app(environ, single_date(start_response))

    def _check(self, environ: dict[str, Any]) -> None:
        method = environ.get("REQUEST_METHOD", "")
        # PATH_INFO contains the path's UTF-8 bytes read as Latin-1, as WSGI has it.
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
        names = split_path(path)
        if not names and method in ROOT_CHANGE_ERRORS:
            raise Forbidden(ROOT_CHANGE_ERRORS[method])
        header = environ.get("HTTP_DESTINATION")
        if method not in ("COPY", "MOVE") or header is None:
            return
        destination = check_destination(header, environ.get("SCRIPT_NAME", ""))
        if destination is None:
            return
        if not destination.names:
            raise Forbidden(ROOT_DESTINATION)
        environ["HTTP_DESTINATION"] = destination.header


def single_date(start_response: StartResponse) -> StartResponse:
    """Drop WsgiDAV's Date headers: the HTTP server adds its own to every response."""

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        kept = [(name, value) for name, value in headers if name.lower() != "date"]
        return start_response(status, kept, exc_info)

    return start
