"""Guest accounts: the invitation e-mail and its link, what a guest reaches, expiry and ending.

The invitation goes through a real SMTP server (aiosmtpd) on 127.0.0.1 and
the tests follow the link it carries. A guest reaches `/me`, what is shared
with them and the web pages of those. Every other route of the application,
found by walking its routes, must return 403 and none of the tenant's data.
Most tests run on the shared level of each backend, and the cross-tenant
token test on every level.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import update

from strongroom.base.config import Settings
from strongroom.base.errors import Conflict, Forbidden, InvalidInput
from strongroom.identity.app_passwords import create_app_password
from strongroom.identity.models import UserRow
from strongroom.identity.tokens import create_token
from strongroom.identity.users import access_user, change_role, create_user
from strongroom.interfaces.api.app import create_app
from strongroom.interfaces.web.routing import WebRoute
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.models import utcnow
from tests.conftest import SHARED_LEVELS, Cast, LiveServer, Member, add_member, legacy_guest_token
from tests.security.routes import PARAMETER_KINDS, Route, app_routes
from tests.services.smtp import Mailbox, SmtpServer
from tests.web.helpers import csrf_of, post_login, sign_in

SHARED_ONLY = pytest.mark.parametrize("level", SHARED_LEVELS, indirect=True)
GUEST_EMAIL = "visitor@partner.example"
GUEST_PASSWORD = "a guest's long password"
SECRET = b"the shared plan of acme, for the guest"
HIDDEN = b"acme's private ledger, never shared"
INVITE_LINK = re.compile(r"(\S+)/invite/([A-Za-z0-9_-]+)")
# The routes a guest reaches, when the share names them.
OPEN_TO_GUESTS = {
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/shared-with-me"),
}
SHARE_CONTENT = "/api/v1/shares/{share_id}/"
# Web pages a guest opens: what is shared with them, and the pages anyone opens.
WEB_OPEN_TO_GUESTS = {
    "/shared/",
    "/shared/{share_id}/{path:path}",
    "/shared-download/{share_id}/{path:path}",
    "/",
    "/login",
    "/logout",
    "/login/second-factor",
    "/static/{name}",
    "/branding.css",
    "/branding/logo",
    "/invite/{token}",
}


@pytest.fixture
def settings(settings: Settings, smtp_server: SmtpServer) -> Settings:
    """The test settings, with invitations sent to the test SMTP server."""
    return settings.model_copy(
        update={"smtp_host": smtp_server.host, "smtp_port": smtp_server.port, "smtp_starttls": False}
    )


@pytest.fixture
def browser(live_server: LiveServer) -> Iterator[httpx.Client]:
    """A second client with its own cookies, as the guest's browser."""
    with httpx.Client(base_url=live_server.url, timeout=30) as guest_browser:
        yield guest_browser


# Helpers --------------------------------------------------------------------------------


def invite(client: httpx.Client, inviter: Member, email: str = GUEST_EMAIL, **extra: Any) -> httpx.Response:
    return client.post(inviter.url("guests"), headers=inviter.headers, json={"email": email, **extra})


def invited(client: httpx.Client, inviter: Member, email: str = GUEST_EMAIL, **extra: Any) -> dict:
    response = invite(client, inviter, email, **extra)
    assert response.status_code == 201, response.text
    return response.json()


def invitation_path(mailbox: Mailbox, count: int = 1) -> str:
    """Return the path of the invitation link in the last of `count` mails, for the test client."""
    mail = mailbox.wait_for(count)[-1]
    found = INVITE_LINK.search(mail.message.get_content())
    assert found, mail.message.get_content()
    base = found.group(1).split("//", 1)[-1]
    return base[base.index("/"):] + f"/invite/{found.group(2)}"


def accept(browser: httpx.Client, path: str, password: str = GUEST_PASSWORD) -> httpx.Response:
    page = browser.get(path)
    assert page.status_code == 200, page.text
    form = {"password": password, "confirmation": password, "csrf_token": csrf_of(page.text)}
    return browser.post(path, data=form)


def token_for(runtime: Runtime, tenant: TenantInfo, user_id: str) -> dict[str, str]:
    """Return bearer headers for a guest, with a token made before guests were refused tokens."""
    with runtime.stores.session(tenant, write=True) as session:
        user = access_user(session, uuid.UUID(user_id))
        secret = legacy_guest_token(session, user)
    return {"Authorization": f"Bearer {secret}"}


def put(client: httpx.Client, member: Member, path: str, body: bytes) -> None:
    response = client.put(member.url(f"files/{path}"), headers=member.headers, content=body)
    assert response.status_code in (200, 201), response.text


def share(client: httpx.Client, owner: Member, path: str, user_id: str, permission: str = "read") -> str:
    body = {"path": path, "user_id": user_id, "permission": permission}
    response = client.post(owner.url("shares"), headers=owner.headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def expire(runtime: Runtime, tenant: TenantInfo, user_id: str) -> None:
    with runtime.stores.session(tenant, write=True) as session:
        session.execute(
            update(UserRow)
            .where(UserRow.id == uuid.UUID(user_id))
            .values(expires_at=utcnow() - dt.timedelta(seconds=1))
        )


def in_days(days: float) -> str:
    return (utcnow() + dt.timedelta(days=days)).isoformat()


def web_login(browser: httpx.Client, tenant: TenantInfo, password: str = GUEST_PASSWORD) -> httpx.Response:
    return post_login(browser, f"/t/{tenant.slug}", GUEST_EMAIL, password)


# Invitation -----------------------------------------------------------------------------


@SHARED_ONLY
def test_guest_invitation_mail_link_works_once(
    client: httpx.Client, browser: httpx.Client, cast: Cast, mailbox: Mailbox
) -> None:
    guest = invited(client, cast.acme_member, note="The plans for Tuesday")
    [mail] = mailbox.wait_for(1)
    path = invitation_path(mailbox)
    page = browser.get(path)

    accepted = accept(browser, path)
    again = browser.get(path)
    form = {"password": "x" * 20, "confirmation": "x" * 20, "csrf_token": csrf_of(page.text)}
    replayed = browser.post(path, data=form)
    login = web_login(browser, cast.acme)

    assert guest["state"] == "invited"
    assert mail.recipients == [GUEST_EMAIL]
    assert mail.message["Subject"] == "Invitation to Acme"
    assert "The plans for Tuesday" in mail.message.get_content()
    assert path.startswith("/t/acme/invite/")
    assert GUEST_EMAIL in page.text
    assert accepted.status_code == 303
    assert accepted.headers["location"].endswith("/login?done=password-set")
    assert again.status_code == 404
    assert replayed.status_code == 404
    assert login.status_code == 303
    assert login.headers["location"] == "/t/acme/shared/"


@SHARED_ONLY
def test_guest_invitation_form_needs_csrf_and_policy(
    client: httpx.Client, browser: httpx.Client, cast: Cast, mailbox: Mailbox
) -> None:
    invited(client, cast.acme_member)
    path = invitation_path(mailbox)
    page = browser.get(path)
    token = csrf_of(page.text)

    forged = browser.post(
        path, data={"password": GUEST_PASSWORD, "confirmation": GUEST_PASSWORD, "csrf_token": "x"}
    )
    short = browser.post(path, data={"password": "short", "confirmation": "short", "csrf_token": token})
    differ = browser.post(
        path, data={"password": GUEST_PASSWORD, "confirmation": "another one!", "csrf_token": token}
    )
    still_open = browser.get(path)

    assert forged.status_code == 403
    assert short.status_code == 400
    assert "characters" in short.text
    assert differ.status_code == 400
    assert "differ" in differ.text
    assert still_open.status_code == 200


@SHARED_ONLY
def test_guest_invite_of_existing_user_conflicts(client: httpx.Client, cast: Cast) -> None:
    response = invite(client, cast.acme_member, cast.acme_admin.email)

    assert response.status_code == 409
    assert cast.acme_admin.email in response.json()["detail"]


@SHARED_ONLY
def test_guest_expiry_bounded_by_setting(client: httpx.Client, cast: Cast) -> None:
    default = invited(client, cast.acme_member, "a@partner.example")
    too_far = invite(client, cast.acme_member, "b@partner.example", expires_at=in_days(31))
    past = invite(client, cast.acme_member, "c@partner.example", expires_at=in_days(-1))
    within = invited(client, cast.acme_member, "d@partner.example", expires_at=in_days(3))

    expires = dt.datetime.fromisoformat(default["expires"])
    assert abs(expires - (utcnow() + dt.timedelta(days=30))) < dt.timedelta(minutes=5)
    assert too_far.status_code == 400
    assert "guest_max_days" in too_far.json()["detail"]
    assert past.status_code == 400
    assert "in the past" in past.json()["detail"]
    assert within["state"] == "invited"


# What a guest reaches --------------------------------------------------------------------


@SHARED_ONLY
def test_guest_sees_and_downloads_what_is_shared(
    runtime: Runtime, client: httpx.Client, browser: httpx.Client, cast: Cast, mailbox: Mailbox
) -> None:
    owner = cast.acme_member
    put(client, owner, "docs/plan.txt", SECRET)
    put(client, owner, "private/ledger.txt", HIDDEN)
    guest = invited(client, owner)
    share_id = share(client, owner, "docs", guest["id"])
    accept(browser, invitation_path(mailbox))
    headers = token_for(runtime, cast.acme, guest["id"])

    me = client.get(owner.url("me"), headers=headers)
    listed = client.get(owner.url("shared-with-me"), headers=headers)
    folder = client.get(owner.url(f"shares/{share_id}/folders/"), headers=headers)
    content = client.get(owner.url(f"shares/{share_id}/files/plan.txt"), headers=headers)
    above = client.get(owner.url(f"shares/{share_id}/files/../private/ledger.txt"), headers=headers)
    write = client.put(owner.url(f"shares/{share_id}/files/new.txt"), headers=headers, content=b"x")

    assert me.json()["role"] == "guest"
    assert me.json()["expires"] is not None
    assert [item["id"] for item in listed.json()["items"]] == [share_id]
    assert [item["name"] for item in folder.json()["items"]] == ["plan.txt"]
    assert content.status_code == 200
    assert content.content == SECRET
    assert above.status_code in (400, 404)
    assert HIDDEN not in above.content
    assert write.status_code == 403


@SHARED_ONLY
def test_guest_web_shows_only_shared_with_me(
    client: httpx.Client, browser: httpx.Client, cast: Cast, mailbox: Mailbox
) -> None:
    owner = cast.acme_member
    put(client, owner, "docs/plan.txt", SECRET)
    guest = invited(client, owner)
    share_id = share(client, owner, "docs", guest["id"])
    accept(browser, invitation_path(mailbox))
    web_login(browser, cast.acme)

    shared = browser.get("/t/acme/shared/")
    folder = browser.get(f"/t/acme/shared/{share_id}/")
    download = browser.get(f"/t/acme/shared-download/{share_id}/plan.txt")
    files = browser.get("/t/acme/files/")
    home = browser.get("/t/acme/")

    assert shared.status_code == 200
    assert "docs" in shared.text
    assert "/t/acme/files/" not in shared.text
    assert "plan.txt" in folder.text
    assert download.content == SECRET
    assert files.status_code == 403
    assert "shared with them" in files.text
    assert home.headers["location"] == "/t/acme/shared/"


@SHARED_ONLY
def test_guest_api_reaches_no_other_route(runtime: Runtime, client: httpx.Client, cast: Cast) -> None:
    owner = cast.acme_member
    put(client, owner, "docs/plan.txt", SECRET)
    put(client, owner, "private/ledger.txt", HIDDEN)
    guest = invited(client, owner)
    other = invited(client, owner, "other@partner.example")
    share_id = share(client, owner, "docs", guest["id"])
    unshared = share(client, owner, "private", other["id"])
    node = client.get(owner.url("folders/private"), headers=owner.headers).json()["id"]
    headers = token_for(runtime, cast.acme, guest["id"])
    ids = {"share": unshared, "node": node, "user": str(owner.user_id), "guest": other["id"]}
    routes = [route for route in app_routes(create_app(runtime)) if route.guarded]

    checked = 0
    for route in routes:
        if (route.method, route.path) in OPEN_TO_GUESTS:
            continue
        response = client.request(
            route.method,
            fill(route, ids, "private/ledger.txt"),
            headers={**headers, "Tus-Resumable": "1.0.0", "X-CSRF-Token": "x"},
            content=b"written by a guest",
        )
        where = f"{route.method} {route.path}"
        assert HIDDEN not in response.content, where
        if route.path.startswith(SHARE_CONTENT):
            # Open to guests, but this share names someone else: not found, like a made-up id.
            assert response.status_code == 404, where
        else:
            assert response.status_code == 403, where
        if route.method != "HEAD" and response.status_code == 403:
            assert response.json()["type"].endswith(":guest-confined"), where
            assert "shared with them" in response.json()["detail"], where
        checked += 1

    own_share = client.get(owner.url(f"shares/{share_id}/files/plan.txt"), headers=headers)
    assert checked >= 50
    assert own_share.content == SECRET
    assert client.get(owner.url("files/private/ledger.txt"), headers=owner.headers).content == HIDDEN


def fill(route: Route, ids: dict[str, str], path: str) -> str:
    """Return the route's URL under acme, with the ids given by kind and `path` for paths."""

    def value(match: re.Match[str]) -> str:
        kind = PARAMETER_KINDS[match.group(1)]
        if kind in ("path", "name"):
            return path
        return ids.get(kind, str(uuid.uuid4()))

    return "/t/acme" + re.sub(r"\{(\w+)(?::\w+)?\}", value, route.path)


@SHARED_ONLY
def test_guest_web_reaches_no_other_page(
    runtime: Runtime, client: httpx.Client, browser: httpx.Client, cast: Cast, mailbox: Mailbox
) -> None:
    owner = cast.acme_member
    put(client, owner, "private/ledger.txt", HIDDEN)
    invited(client, owner)
    accept(browser, invitation_path(mailbox))
    web_login(browser, cast.acme)
    csrf = csrf_of(browser.get("/t/acme/shared/").text)
    pages = [
        (method, context.path)
        for context in iter_route_contexts(create_app(runtime).routes)
        if isinstance(context.original_route, WebRoute)
        for method in sorted(context.methods or ())
        if context.path not in WEB_OPEN_TO_GUESTS
    ]

    for method, path in pages:
        url = "/t/acme" + re.sub(r"\{(\w+)(?::(\w+))?\}", web_value, path)
        response = browser.request(method, url, headers={"X-CSRF-Token": csrf})
        where = f"{method} {path}"
        assert response.status_code == 403, where
        assert HIDDEN not in response.content, where

    assert len(pages) >= 10


def web_value(match: re.Match[str]) -> str:
    """Fill a page's parameter: a path of the owner's drive, or a made-up id."""
    return "private/ledger.txt" if match.group(2) == "path" else str(uuid.uuid4())


# Expiry, ending, settings, modules --------------------------------------------------------


@SHARED_ONLY
def test_guest_expired_cannot_log_in_or_act(
    runtime: Runtime, client: httpx.Client, browser: httpx.Client, cast: Cast, mailbox: Mailbox
) -> None:
    guest = invited(client, cast.acme_member)
    accept(browser, invitation_path(mailbox))
    web_login(browser, cast.acme)
    headers = token_for(runtime, cast.acme, guest["id"])
    before = client.get(cast.acme_member.url("me"), headers=headers)

    expire(runtime, cast.acme, guest["id"])
    runtime.tokens.clear()
    after = client.get(cast.acme_member.url("me"), headers=headers)
    page = browser.get("/t/acme/shared/")
    login = web_login(browser, cast.acme)
    listed = client.get(cast.acme_member.url("guests"), headers=cast.acme_member.headers)

    assert before.status_code == 200
    assert after.status_code == 401
    assert page.status_code == 303
    assert "/login" in page.headers["location"]
    assert login.status_code == 401
    assert [item["state"] for item in listed.json()["items"]] == ["expired"]


@SHARED_ONLY
def test_guest_invitation_of_expired_guest_fails(
    runtime: Runtime, client: httpx.Client, browser: httpx.Client, cast: Cast, mailbox: Mailbox
) -> None:
    guest = invited(client, cast.acme_member)
    path = invitation_path(mailbox)

    expire(runtime, cast.acme, guest["id"])
    page = browser.get(path)

    assert page.status_code == 404


@SHARED_ONLY
def test_guest_ended_loses_sessions_and_tokens(
    runtime: Runtime, client: httpx.Client, browser: httpx.Client, cast: Cast, mailbox: Mailbox
) -> None:
    guest = invited(client, cast.acme_member)
    accept(browser, invitation_path(mailbox))
    web_login(browser, cast.acme)
    headers = token_for(runtime, cast.acme, guest["id"])
    assert client.get(cast.acme_member.url("me"), headers=headers).status_code == 200

    by_other = client.delete(
        cast.acme_member.url(f"guests/{guest['id']}"), headers=peer_headers(runtime, cast)
    )
    ended = client.delete(cast.acme_member.url(f"guests/{guest['id']}"), headers=cast.acme_member.headers)
    token_use = client.get(cast.acme_member.url("me"), headers=headers)
    page = browser.get("/t/acme/shared/")
    login = web_login(browser, cast.acme)

    assert by_other.status_code == 404
    assert ended.status_code == 200
    assert ended.json()["state"] == "ended"
    assert token_use.status_code == 401
    assert page.status_code == 303
    assert login.status_code == 401


@SHARED_ONLY
def test_guest_reinvited_after_end(
    runtime: Runtime, client: httpx.Client, browser: httpx.Client, cast: Cast, mailbox: Mailbox
) -> None:
    owner = cast.acme_member
    guest = invited(client, owner)
    accept(browser, invitation_path(mailbox))
    headers = token_for(runtime, cast.acme, guest["id"])

    while_active = invite(client, owner)
    client.delete(owner.url(f"guests/{guest['id']}"), headers=owner.headers)
    again = invite(client, owner)
    old_token = client.get(owner.url("me"), headers=headers)
    old_password = web_login(browser, cast.acme)
    accepted = accept(browser, invitation_path(mailbox, 2), "a new guest password")
    new_password = web_login(browser, cast.acme, "a new guest password")

    assert while_active.status_code == 409
    assert "end the guest" in while_active.json()["detail"]
    assert again.status_code == 201
    assert again.json()["id"] == guest["id"]
    assert again.json()["state"] == "invited"
    assert old_token.status_code == 401
    assert old_password.status_code == 401
    assert accepted.status_code == 303
    assert new_password.status_code == 303


def audit_trail(client: httpx.Client, admin: Member, action: str) -> list[dict[str, Any]]:
    response = client.get(admin.url("audit"), headers=admin.headers, params={"action": action})
    assert response.status_code == 200, response.text
    return response.json()["items"]


@SHARED_ONLY
def test_guest_invitation_lifecycle_audited(
    client: httpx.Client, browser: httpx.Client, cast: Cast, mailbox: Mailbox
) -> None:
    inviter, admin = cast.acme_member, cast.acme_admin
    guest = invited(client, inviter, note="The plans for Tuesday")
    path = invitation_path(mailbox)
    accept(browser, path)
    client.delete(inviter.url(f"guests/{guest['id']}"), headers=inviter.headers)
    invited(client, inviter)

    sent, first_sent = audit_trail(client, admin, "guest_invited")
    [accepted] = audit_trail(client, admin, "guest_invitation_accepted")
    [ended] = audit_trail(client, admin, "guest_ended")

    target = {"type": "user", "id": guest["id"]}
    assert first_sent["actor"] == str(inviter.user_id)
    assert first_sent["target"] == target
    assert first_sent["new"]["renewed"] is False
    recorded_expiry = dt.datetime.fromisoformat(first_sent["new"]["expires_at"])
    assert recorded_expiry == dt.datetime.fromisoformat(guest["expires"])
    assert sent["new"]["renewed"] is True
    assert accepted["actor"] == guest["id"]
    assert accepted["target"] == target
    assert accepted["address"] == "127.0.0.1"
    assert ended["actor"] == str(inviter.user_id)
    assert ended["old"] == {"state": "active"}
    assert ended["new"] == {"state": "ended"}
    for event in (sent, first_sent, accepted, ended):
        assert GUEST_EMAIL not in str(event)
        assert "Tuesday" not in str(event)
        assert path.rsplit("/", 1)[-1] not in str(event)


def test_guest_events_stay_in_tenant(client: httpx.Client, cast: Cast) -> None:
    invited(client, cast.acme_member)

    assert len(audit_trail(client, cast.acme_admin, "guest_invited")) == 1
    assert audit_trail(client, cast.globex_admin, "guest_invited") == []


def test_guest_end_refused_leaves_no_event(runtime: Runtime, client: httpx.Client, cast: Cast) -> None:
    guest = invited(client, cast.acme_member)

    refused = client.delete(
        cast.acme_member.url(f"guests/{guest['id']}"), headers=peer_headers(runtime, cast)
    )

    assert refused.status_code == 404
    assert audit_trail(client, cast.acme_admin, "guest_ended") == []


def peer_headers(runtime: Runtime, cast: Cast) -> dict[str, str]:
    """Bearer headers of a second member of acme, who did not invite the guest."""
    return add_member(runtime, cast.acme, "peer@acme.test", "member").headers


@SHARED_ONLY
def test_guest_list_by_role(client: httpx.Client, cast: Cast) -> None:
    mine = invited(client, cast.acme_member, "mine@partner.example")
    theirs = invited(client, cast.acme_admin, "theirs@partner.example")

    member_list = client.get(cast.acme_member.url("guests"), headers=cast.acme_member.headers)
    admin_list = client.get(cast.acme_admin.url("guests"), headers=cast.acme_admin.headers)
    member_users = client.get(cast.acme_member.url("users"), headers=cast.acme_member.headers)
    admin_users = client.get(cast.acme_admin.url("users"), headers=cast.acme_admin.headers)

    assert [item["id"] for item in member_list.json()["items"]] == [mine["id"]]
    assert {item["id"] for item in admin_list.json()["items"]} == {mine["id"], theirs["id"]}
    assert mine["email"] not in member_users.text
    assert mine["email"] in admin_users.text


@SHARED_ONLY
def test_guest_on_admin_users_page(live_server: LiveServer, client: httpx.Client, cast: Cast) -> None:
    guest = invited(client, cast.acme_member)
    admin = sign_in(live_server.url, cast.acme_admin)
    try:
        page = admin.get("/admin/users")
    finally:
        admin.client.close()

    assert page.status_code == 200
    assert guest["email"] in page.text
    assert "guest, until" in page.text


@SHARED_ONLY
def test_guest_member_not_allowed_by_setting(client: httpx.Client, cast: Cast) -> None:
    admin = cast.acme_admin
    switched = client.patch(
        admin.url("settings"),
        headers={**admin.headers, "Content-Type": "application/merge-patch+json"},
        json={"guest_invites": "admins"},
    )

    by_member = invite(client, cast.acme_member, "a@partner.example")
    by_admin = invite(client, admin, "b@partner.example")

    assert switched.status_code == 200, switched.text
    assert by_member.status_code == 403
    assert "guest_invites" in by_member.json()["detail"]
    assert by_admin.status_code == 201


@SHARED_ONLY
def test_guest_setting_rejects_unknown_value(client: httpx.Client, cast: Cast) -> None:
    admin = cast.acme_admin
    response = client.patch(
        admin.url("settings"),
        headers={**admin.headers, "Content-Type": "application/merge-patch+json"},
        json={"guest_invites": "everyone", "guest_max_days": 0},
    )

    assert response.status_code == 400
    assert "guest_invites" in response.json()["detail"]
    assert "guest_max_days" in response.json()["detail"]


@SHARED_ONLY
def test_guest_module_off_refuses_guests(
    runtime: Runtime, client: httpx.Client, browser: httpx.Client, cast: Cast, mailbox: Mailbox
) -> None:
    admin = cast.acme_admin
    guest = invited(client, cast.acme_member)
    path = invitation_path(mailbox)
    headers = token_for(runtime, cast.acme, guest["id"])

    off = client.patch(admin.url("modules"), headers=admin.headers, json={"guests": False})
    created = invite(client, cast.acme_member, "b@partner.example")
    listed = client.get(cast.acme_member.url("guests"), headers=cast.acme_member.headers)
    as_guest = client.get(cast.acme_member.url("me"), headers=headers)
    page = browser.get(path)

    assert off.status_code == 200, off.text
    assert created.status_code == 403
    assert "guests" in created.json()["detail"]
    assert listed.status_code == 403
    assert as_guest.status_code == 403
    assert page.status_code == 403


@SHARED_ONLY
def test_guest_gets_no_app_password(runtime: Runtime, client: httpx.Client, cast: Cast) -> None:
    guest = invited(client, cast.acme_member)

    with runtime.stores.session(cast.acme, write=True) as session:
        user = access_user(session, uuid.UUID(guest["id"]))
        with pytest.raises(Forbidden, match="guests get no app passwords"):
            create_app_password(session, user, "device")


@SHARED_ONLY
def test_invitation_reply_says_mail_sent(client: httpx.Client, cast: Cast) -> None:
    guest = invited(client, cast.acme_member)

    assert guest["invitation_mailed"] is True
    assert "/invite/" not in str(guest)


@SHARED_ONLY
def test_invitation_without_smtp_says_not_mailed(
    runtime: Runtime, client: httpx.Client, cast: Cast
) -> None:
    runtime.mailer.host = None

    guest = invited(client, cast.acme_member)

    assert guest["invitation_mailed"] is False
    assert "/invite/" not in str(guest)


@SHARED_ONLY
def test_guest_gets_no_token(runtime: Runtime, client: httpx.Client, cast: Cast) -> None:
    guest = invited(client, cast.acme_member)

    with runtime.stores.session(cast.acme, write=True) as session:
        user = access_user(session, uuid.UUID(guest["id"]))
        with pytest.raises(Forbidden, match="guests get no API tokens"):
            create_token(session, user, "ci")


@SHARED_ONLY
def test_guest_role_not_assignable(runtime: Runtime, client: httpx.Client, cast: Cast) -> None:
    guest = invited(client, cast.acme_member)

    with runtime.stores.session(cast.acme, write=True) as session:
        with pytest.raises(InvalidInput, match="POST /api/v1/guests"):
            create_user(session, "new@acme.test", GUEST_PASSWORD, role="guest")
        with pytest.raises(InvalidInput, match="POST /api/v1/guests"):
            change_role(session, cast.acme_member.user_id, "guest", cast.acme_admin.user_id)
        with pytest.raises(Conflict, match="is a guest"):
            change_role(session, uuid.UUID(guest["id"]), "member", cast.acme_admin.user_id)


def test_guest_foreign_token_fails_like_unknown(
    runtime: Runtime, client: httpx.Client, cast: Cast
) -> None:
    guest = invited(client, cast.acme_member)
    headers = token_for(runtime, cast.acme, guest["id"])
    made_up = {"Authorization": "Bearer sr_" + "x" * 43}

    own = client.get(cast.acme_member.url("me"), headers=headers)
    foreign = client.get(cast.globex_member.url("shared-with-me"), headers=headers)
    unknown = client.get(cast.globex_member.url("shared-with-me"), headers=made_up)

    assert own.status_code == 200
    assert foreign.status_code == 401
    assert foreign.status_code == unknown.status_code
    assert foreign.json()["detail"] == unknown.json()["detail"]
