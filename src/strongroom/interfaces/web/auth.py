"""Authentication of web requests, and the pages that change it: login, second factor, logout.

Logins are rate-limited twice, per tenant: attempts per client address, and
failures per account whatever the address, so that neither one address nor
many can guess a password or a code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Annotated
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from strongroom.base import metrics
from strongroom.base.errors import InvalidInput, NotAuthenticated, RateLimited
from strongroom.base.logging import get_logger
from strongroom.identity import logins, second_factors, web_sessions
from strongroom.identity.users import get_user_by_email
from strongroom.identity.web_sessions import WebIdentity
from strongroom.interfaces.api.confinement import check_guest_reach
from strongroom.interfaces.api.dependencies import RuntimeDep, TenantDep, actor_of
from strongroom.interfaces.web.pages import SignedIn, render, web_state
from strongroom.interfaces.web.routing import LoginRequired, WebRoute, redirect
from strongroom.interfaces.web.security import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    CsrfRejected,
    base_path,
    check_csrf,
    check_same_origin,
    clear_cookie,
    new_login_token,
    set_cookie,
)
from strongroom.runtime import Runtime
from strongroom.storage.db import TenantSession
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.events import Actor, Target, add_event

log = get_logger(__name__)

router = APIRouter(route_class=WebRoute, include_in_schema=False)

LOGIN_FAILED = "the e-mail address or the password is wrong; check both and try again"
CODE_FAILED = "the code is wrong, expired or used already; type the code your app shows now"
SECOND_FACTOR_TITLE = "Two-step verification"


# Who the request acts as --------------------------------------------------------------


def _read_identity(runtime: Runtime, tenant: TenantInfo, secret: str) -> WebIdentity | None:
    idle = dt.timedelta(minutes=runtime.settings.session_idle_minutes)
    try:
        with runtime.stores.session(tenant) as session:
            identity = web_sessions.authenticate_session(session, secret, idle)
    except NotAuthenticated:
        return None
    if identity.needs_touch:
        with runtime.stores.session(tenant, write=True) as session:
            web_sessions.touch_session(session, identity.session_id)
    return identity


def current_session(request: Request, runtime: Runtime, tenant: TenantInfo) -> SignedIn | None:
    """Return the request's session, signed in or still owing its second factor, or None."""
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    identity = _read_identity(runtime, tenant, secret)
    return SignedIn(identity, secret) if identity is not None else None


def require_user(request: Request, runtime: RuntimeDep, tenant: TenantDep) -> SignedIn:
    """Return the signed-in user; a guest passes only on the pages open to guests."""
    signed_in = current_session(request, runtime, tenant)
    if signed_in is None:
        raise LoginRequired()
    if signed_in.identity.awaiting_second_factor:
        raise LoginRequired(second_factor=True)
    request.state.signed_in = signed_in
    if signed_in.identity.is_guest:
        check_guest_reach(request.scope, tenant)
    return signed_in


def start_page(request: Request, is_guest: bool) -> str:
    """Return the page a user lands on: their files, or for a guest what is shared with them."""
    return f"{base_path(request)}/{'shared/' if is_guest else 'files/'}"


UserDep = Annotated[SignedIn, Depends(require_user)]


async def require_user_with_token(request: Request, signed_in: UserDep) -> SignedIn:
    """Return the signed-in user of an unsafe request whose CSRF token is valid."""
    await check_csrf(request, signed_in.csrf_token)
    return signed_in


WriterDep = Annotated[SignedIn, Depends(require_user_with_token)]


# Login --------------------------------------------------------------------------------


def _safe_next(request: Request, wanted: str | None) -> str:
    """Return where to go after login: a page of this tenant, never another site."""
    base = base_path(request)
    if (
        wanted
        and wanted.startswith(f"{base}/")
        and not wanted.startswith("//")
        and not any(character in wanted for character in "\\\r\n")
    ):
        return wanted
    return f"{base}/files/"


def _login_page(
    request: Request, token: str, error: str | None = None, status_code: int = 200,
    email: str = "", wanted: str | None = None,
) -> Response:
    return render(
        request,
        "login.html",
        {"title": "Sign in", "error": error, "email": email, "next": _safe_next(request, wanted)},
        status_code,
        csrf_token=token,
    )


@router.get("/")
def home(request: Request, runtime: RuntimeDep, tenant: TenantDep) -> Response:
    signed_in = current_session(request, runtime, tenant)
    if signed_in is None or signed_in.identity.awaiting_second_factor:
        return redirect(request, f"{base_path(request)}/login")
    return redirect(request, start_page(request, signed_in.identity.is_guest))


@router.get("/login")
def login_form(request: Request, runtime: RuntimeDep, _tenant: TenantDep) -> Response:
    token = request.cookies.get(LOGIN_COOKIE) or new_login_token()
    response = _login_page(request, token, wanted=request.query_params.get("next"))
    set_cookie(response, request, runtime, LOGIN_COOKIE, token)
    return response


def _subject(email: str) -> str:
    # A digest, because an address may contain '/', which a rate-limit key cannot.
    return hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()


def _check_rate(request: Request, tenant: TenantInfo, email: str) -> None:
    state = web_state(request)
    address = request.client.host if request.client else "unknown"
    waits = [
        state.login_by_address.retry_after(tenant.id, address),
        state.login_by_account.retry_after(tenant.id, _subject(email)),
    ]
    state.login_by_address.hit(tenant.id, address)
    wait = max((w for w in waits if w is not None), default=None)
    if wait is not None:
        metrics.login_failures.labels("rate-limited").inc()
        log.info("login_rate_limited", retry_after=wait)
        raise RateLimited(
            f"too many login attempts; wait {wait} seconds, then try again", retry_after=wait
        )


def check_login_token(request: Request, token: str) -> None:
    check_same_origin(request)
    expected = request.cookies.get(LOGIN_COOKIE)
    if not expected or not token or token != expected:
        raise CsrfRejected(
            "the login form expired or your browser blocks cookies; reload the page, allow "
            "cookies for this site and log in again"
        )


@router.post("/login")
def login(
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next_page: Annotated[str, Form(alias="next", max_length=2000)] = "",
) -> Response:
    check_login_token(request, csrf_token)
    _check_rate(request, tenant, email)

    with runtime.stores.session(tenant, write=True) as session:
        user = logins.verify_login(session, email, password)
        has_code = user is not None and second_factors.has_second_factor(session, user.id)
        if user is not None and not has_code:
            logins.record_success(session, user.id)
            _add_login_event(session, request, tenant, "login", user.id, "password")
        elif user is None:
            _add_failed_login_event(session, request, tenant, email)
    if user is None:
        web_state(request).login_by_account.hit(tenant.id, _subject(email))
        metrics.login_failures.labels("password").inc()
        return _login_page(request, csrf_token, LOGIN_FAILED, 401, email, next_page)

    wanted = _safe_next(request, next_page)
    if user.is_guest and not wanted.startswith(start_page(request, is_guest=True)):
        # The login form requests the files page by default, which guests cannot open.
        wanted = start_page(request, is_guest=True)
    if has_code:
        wanted = f"{base_path(request)}/login/second-factor?next={quote(wanted, safe='/')}"
    response = redirect(request, wanted)
    _start_session(request, runtime, tenant, response, user.id, awaiting_second_factor=has_code)
    return response


def _add_login_event(
    session: TenantSession,
    request: Request,
    tenant: TenantInfo,
    action: str,
    user_id: uuid.UUID,
    method: str,
) -> None:
    add_event(
        session,
        tenant,
        action,
        actor_of(request, user_id),
        target=Target("user", user_id),
        new={"method": method},
    )


def _add_failed_login_event(
    session: TenantSession, request: Request, tenant: TenantInfo, email: str
) -> None:
    """Record a failed password login, naming the account when the address is a user's.

    The address typed is not stored: it may be a password typed in the wrong field.
    """
    try:
        user = get_user_by_email(session, email)
    except InvalidInput:
        user = None
    add_event(
        session,
        tenant,
        "login_failed",
        actor_of(request, None),
        target=Target("user", user.id) if user is not None else None,
        new={"method": "password", "known_account": user is not None},
    )


def _start_session(
    request: Request,
    runtime: Runtime,
    tenant: TenantInfo,
    response: Response,
    user_id: object,
    awaiting_second_factor: bool,
) -> None:
    """Open a new session with a new secret, ending the one the browser had, if any."""
    settings = runtime.settings
    lifetime = dt.timedelta(hours=settings.session_max_hours)
    idle = dt.timedelta(minutes=settings.session_idle_minutes)
    previous = current_session(request, runtime, tenant)
    with runtime.stores.session(tenant, write=True) as session:
        if previous is not None:
            web_sessions.end_session(session, previous.identity.session_id)
        web_sessions.remove_stale_sessions(session, user_id, idle)  # type: ignore[arg-type]
        _row, secret = web_sessions.open_session(
            session, user_id, lifetime, awaiting_second_factor  # type: ignore[arg-type]
        )
    set_cookie(response, request, runtime, SESSION_COOKIE, secret)
    clear_cookie(response, request, runtime, LOGIN_COOKIE)


# Second factor ------------------------------------------------------------------------


def _pending(request: Request, runtime: Runtime, tenant: TenantInfo) -> SignedIn:
    signed_in = current_session(request, runtime, tenant)
    if signed_in is None:
        raise LoginRequired()
    if not signed_in.identity.awaiting_second_factor:
        raise LoginRequired()
    return signed_in


@router.get("/login/second-factor")
def second_factor_form(request: Request, runtime: RuntimeDep, tenant: TenantDep) -> Response:
    pending = _pending(request, runtime, tenant)
    wanted = _safe_next(request, request.query_params.get("next"))
    return render(
        request,
        "second_factor.html",
        {"title": SECOND_FACTOR_TITLE, "next": wanted},
        csrf_token=pending.csrf_token,
    )


@router.post("/login/second-factor")
async def second_factor(request: Request, runtime: RuntimeDep, tenant: TenantDep) -> Response:
    pending = await anyio.to_thread.run_sync(_pending, request, runtime, tenant)
    await check_csrf(request, pending.csrf_token)
    form = await request.form()
    code = str(form.get("code") or "")[:64]
    wanted = _safe_next(request, str(form.get("next") or ""))
    return await anyio.to_thread.run_sync(
        _finish_second_factor, request, runtime, tenant, pending, code, wanted
    )


def _finish_second_factor(
    request: Request,
    runtime: Runtime,
    tenant: TenantInfo,
    pending: SignedIn,
    code: str,
    wanted: str,
) -> Response:
    state = web_state(request)
    user_id = pending.identity.user_id
    wait = state.login_by_account.retry_after(tenant.id, _subject(pending.identity.email))
    if wait is not None:
        metrics.login_failures.labels("rate-limited").inc()
        raise RateLimited(
            f"too many wrong codes; wait {wait} seconds, then try again", retry_after=wait
        )
    with runtime.stores.session(tenant, write=True) as session:
        accepted = second_factors.verify_second_factor(session, runtime.keyring, user_id, code)
        if accepted:
            logins.record_success(session, user_id)
            _add_login_event(session, request, tenant, "login", user_id, "second_factor")
        else:
            logins.record_failure(session, user_id)
            _add_login_event(session, request, tenant, "login_failed", user_id, "second_factor")
    if not accepted:
        state.login_by_account.hit(tenant.id, _subject(pending.identity.email))
        metrics.login_failures.labels("second-factor").inc()
        return render(
            request,
            "second_factor.html",
            {"title": SECOND_FACTOR_TITLE, "next": wanted, "error": CODE_FAILED},
            401,
            csrf_token=pending.csrf_token,
        )
    response = redirect(request, wanted)
    _start_session(request, runtime, tenant, response, user_id, awaiting_second_factor=False)
    return response


# Logout -------------------------------------------------------------------------------


@router.post("/logout")
async def logout(request: Request, runtime: RuntimeDep, tenant: TenantDep) -> Response:
    signed_in = await anyio.to_thread.run_sync(current_session, request, runtime, tenant)
    if signed_in is not None:
        await check_csrf(request, signed_in.csrf_token)
        actor = actor_of(request, signed_in.identity.user_id)
        await anyio.to_thread.run_sync(_end, runtime, tenant, signed_in, actor)
    response = redirect(request, f"{base_path(request)}/login")
    clear_cookie(response, request, runtime, SESSION_COOKIE)
    return response


def _end(runtime: Runtime, tenant: TenantInfo, signed_in: SignedIn, actor: Actor) -> None:
    """End the browser's session and record the logout in the same transaction."""
    identity = signed_in.identity
    with runtime.stores.session(tenant, write=True) as session:
        web_sessions.end_session(session, identity.session_id)
        add_event(
            session,
            tenant,
            "logout",
            actor,
            target=Target("user", identity.user_id),
            new={"second_factor_pending": identity.awaiting_second_factor},
        )
