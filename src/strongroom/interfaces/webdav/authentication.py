"""HTTP Basic authentication of WebDAV requests with the user's e-mail address and an app password.

It runs as a WSGI layer in front of WsgiDAV, in a2wsgi's worker thread, after
the request middleware has resolved the tenant. Every failure gets the same
401, whatever went wrong, and each failure counts towards the client's limit
of failed logins in that tenant and is recorded in the tenant's audit trail. A
successful login is recorded at most once an hour per app password
(identity/dav_sign_ins.py). A request without credentials also gets a
401 with the Basic challenge, but it is not counted, because clients send such
a request before they send credentials. Whether the tenant's webdav module is
on is checked only after a successful login: a client that has not logged in
learns nothing about the tenant, and a logged-in one gets a 403 problem.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from strongroom.base import log_context
from strongroom.base.errors import (
    ModuleDisabled,
    NotAuthenticated,
    ServiceUnavailable,
    TenantNotFound,
    TooManyRequests,
)
from strongroom.base.logging import get_logger
from strongroom.identity import dav_sign_ins
from strongroom.identity.app_passwords import authenticate_app_password, touch_app_password
from strongroom.identity.tokens import Principal
from strongroom.interfaces.api.middleware import tenant_of_scope
from strongroom.interfaces.webdav.errors import StartResponse, problem
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.events import anonymous_actor, user_actor
from strongroom.tenancy.modules import WEBDAV, check_module
from strongroom.tenancy.rate_limits import FailureLimiter

log = get_logger(__name__)

# RFC 7617: with the charset parameter, clients encode the e-mail and password as UTF-8.
CHALLENGE = {"WWW-Authenticate": 'Basic realm="Strongroom WebDAV", charset="UTF-8"'}
ENVIRON_KEY = "strongroom.dav"


@dataclass(frozen=True)
class DavRequest:
    """The request context of the WebDAV provider: the runtime, the tenant and the user."""

    runtime: Runtime
    tenant: TenantInfo
    principal: Principal


def dav_request_of(environ: dict[str, Any]) -> DavRequest:
    return environ[ENVIRON_KEY]


class BasicAuthentication:
    """WSGI middleware that admits only requests with a valid app password of the URL's tenant."""

    def __init__(self, app: Any, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self.failures = FailureLimiter(
            "webdav", runtime.settings.basic_auth_failures_per_minute, runtime.settings.redis_url
        )

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        scope = environ["asgi.scope"]
        tenant = tenant_of_scope(scope)
        if tenant is None:
            error = TenantNotFound(
                "WebDAV belongs to a tenant; use /t/{slug}/dav/ or http://{slug}.{base domain}/dav/"
            )
            return problem(error, start_response)

        client = (scope.get("client") or ("unknown",))[0] or "unknown"
        wait = self.failures.retry_after(tenant.id, client)
        if wait is not None:
            log.warning("webdav_login_rate_limited", retry_after=wait)
            error = TooManyRequests(
                f"too many failed WebDAV logins from this address; retry in {wait} seconds",
                retry_after=wait,
            )
            return problem(error, start_response)

        header = environ.get("HTTP_AUTHORIZATION")
        email = None
        try:
            email, password = parse_basic(header)
            principal = self._authenticate(tenant, email, password, client)
        except NotAuthenticated as error:
            if header is not None:
                self.failures.record_failure(tenant.id, client)
                self._record_failure(tenant, email, client)
            return problem(error, start_response, CHALLENGE)

        try:
            # Only after the login, so that a client without credentials gets the same
            # challenge whether the module is on or off.
            check_module(tenant, WEBDAV)
        except ModuleDisabled as error:
            return problem(error, start_response)

        environ[ENVIRON_KEY] = DavRequest(self.runtime, tenant, principal)
        # WsgiDAV records this name as the owner of the locks the request takes.
        environ["wsgidav.auth.user_name"] = str(principal.user_id)
        log_context.bind(actor=f"{principal.user_id}@{tenant.slug}")
        return self.app(environ, start_response)

    def _authenticate(
        self, tenant: TenantInfo, email: str, password: str, client: str
    ) -> Principal:
        with self.runtime.stores.session(tenant) as session:
            login = authenticate_app_password(session, email, password)
        # Both records are rare, a minute and an hour apart, so most requests write nothing.
        if login.needs_touch or login.sign_in_due:
            with self.runtime.stores.session(tenant, write=True) as session:
                if login.needs_touch:
                    touch_app_password(session, login.app_password_id)
                if login.sign_in_due:
                    actor = user_actor(login.principal.user_id, client)
                    dav_sign_ins.record_sign_in(session, tenant, login, actor)
        return login.principal

    def _record_failure(self, tenant: TenantInfo, email: str | None, client: str) -> None:
        log.info("webdav_login_failed")
        try:
            with self.runtime.stores.session(tenant, write=True) as session:
                dav_sign_ins.record_failed_sign_in(session, tenant, email, anonymous_actor(client))
        except (ServiceUnavailable, SQLAlchemyError) as exc:
            # The client gets its 401 all the same; only the trail misses this failure.
            log.error(
                "audit_event_not_stored",
                tenant=tenant.slug,
                action="dav_login_failed",
                error=type(exc).__name__,
            )


def parse_basic(header: str | None) -> tuple[str, str]:
    """Return the user name and password of a Basic Authorization header, or raise NotAuthenticated."""
    missing = NotAuthenticated(
        "WebDAV needs HTTP Basic authentication with your e-mail address and an app password"
    )
    if header is None:
        raise missing
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise missing
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise NotAuthenticated(
            "the Basic credentials are not valid base64 of UTF-8 text; check the client's settings"
        ) from None
    user_name, separator, password = decoded.partition(":")
    if not separator:
        raise NotAuthenticated("the Basic credentials have no ':' between e-mail and password")
    return user_name, password
