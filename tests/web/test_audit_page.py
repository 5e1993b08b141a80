"""The audit trail in the web UI: login events, admin changes, and the admin page that lists,
filters and exports the trail, driven over plain HTTP."""

from __future__ import annotations

import json
from html import unescape
from typing import Any

import httpx
import pytest

from strongroom.runtime import Runtime
from strongroom.tenancy.events import anonymous_actor, record_event
from tests.conftest import Cast, Member
from tests.web.helpers import WebUser, post_login

LOOPBACK = "127.0.0.1"


def events(client: httpx.Client, admin: Member, **filters: str) -> list[dict[str, Any]]:
    response = client.get(admin.url("audit"), headers=admin.headers, params=filters)
    assert response.status_code == 200, response.text
    return response.json()["items"]


# Logins -------------------------------------------------------------------------------


def test_login_recorded_with_address(client: httpx.Client, cast: Cast) -> None:
    member = cast.acme_member

    response = post_login(client, "/t/acme", member.email)

    assert response.status_code == 303
    [event] = events(client, cast.acme_admin, action="login")
    assert event["actor"] == str(member.user_id)
    assert event["address"] == LOOPBACK
    assert event["target"] == {"type": "user", "id": str(member.user_id)}
    assert event["new"] == {"method": "password"}


def test_failed_login_recorded_without_password(client: httpx.Client, cast: Cast) -> None:
    member = cast.acme_member
    wrong = "not the password at all 42"

    known = post_login(client, "/t/acme", member.email, wrong)
    unknown = post_login(client, "/t/acme", "nobody@acme.test", wrong)

    assert (known.status_code, unknown.status_code) == (401, 401)
    newest, oldest = events(client, cast.acme_admin, action="login_failed")
    assert oldest["actor"] == "anonymous"
    assert oldest["address"] == LOOPBACK
    assert oldest["target"] == {"type": "user", "id": str(member.user_id)}
    assert oldest["new"] == {"method": "password", "known_account": True}
    assert newest["target"] is None
    assert newest["new"] == {"method": "password", "known_account": False}
    trail = client.get(cast.acme_admin.url("audit/export"), headers=cast.acme_admin.headers).text
    assert wrong not in trail
    assert "nobody@acme.test" not in trail


def test_failed_login_stays_in_its_tenant(client: httpx.Client, cast: Cast) -> None:
    post_login(client, "/t/acme", cast.acme_member.email, "wrong password, for sure")

    assert events(client, cast.globex_admin, action="login_failed") == []
    assert len(events(client, cast.acme_admin, action="login_failed")) == 1


# Admin changes ------------------------------------------------------------------------


def test_role_change_recorded(acme_admin: WebUser, client: httpx.Client, cast: Cast) -> None:
    target = cast.acme_member.user_id

    acme_admin.post(f"/admin/users/{target}/role", {"role": "admin"})

    [event] = events(client, cast.acme_admin, action="user_role_changed")
    assert event["actor"] == str(cast.acme_admin.user_id)
    assert event["address"] == LOOPBACK
    assert event["target"] == {"type": "user", "id": str(target)}
    assert (event["old"], event["new"]) == ({"role": "member"}, {"role": "admin"})


def test_status_change_recorded(acme_admin: WebUser, client: httpx.Client, cast: Cast) -> None:
    target = cast.acme_member.user_id

    acme_admin.post(f"/admin/users/{target}/status", {"status": "disabled"})

    [event] = events(client, cast.acme_admin, action="user_status_changed")
    assert (event["old"], event["new"]) == ({"status": "active"}, {"status": "disabled"})


def test_user_creation_recorded_without_password(
    acme_admin: WebUser, client: httpx.Client, cast: Cast
) -> None:
    password = "a long enough password 123"

    acme_admin.post("/admin/users", {"email": "new@acme.test", "password": password})

    [event] = events(client, cast.acme_admin, action="user_created")
    assert event["new"] == {"role": "member", "status": "active"}
    assert password not in json.dumps(event)


def test_branding_change_recorded(acme_admin: WebUser, client: httpx.Client, cast: Cast) -> None:
    saved = acme_admin.post("/admin/settings", {"display_name": "Acme Legal", "colour": "#2f5d50"})

    assert saved.status_code == 303
    [event] = events(client, cast.acme_admin, action="branding_changed")
    assert event["new"] == {"display_name": "Acme Legal", "colour": "#2f5d50", "logo_sha256": None}


# The admin page -----------------------------------------------------------------------


def test_audit_page_lists_events(acme_admin: WebUser, cast: Cast) -> None:
    page = acme_admin.get("/admin/audit")

    assert page.status_code == 200
    assert 'id="audit-events"' in page.text
    # The admin's own login, shown by e-mail address.
    assert "<td>login</td>" in page.text
    assert cast.acme_admin.email in page.text
    assert LOOPBACK in page.text
    assert 'href="/t/acme/admin/audit"' in page.text  # the menu entry


def test_audit_page_filters(acme_admin: WebUser, client: httpx.Client, cast: Cast) -> None:
    post_login(client, "/t/acme", cast.acme_member.email, "wrong password, for sure")

    failed = acme_admin.get("/admin/audit?action=login_failed")
    logins = acme_admin.get("/admin/audit?action=login")

    assert "<td>login_failed</td>" in failed.text
    assert "<td>login</td>" not in failed.text
    assert "<td>login_failed</td>" not in logins.text
    assert 'href="/t/acme/admin/audit/export?action=login_failed"' in failed.text


def test_audit_page_pages_older_events(acme_admin: WebUser, runtime: Runtime, cast: Cast) -> None:
    # Written directly: 51 failed logins through the form would meet the login rate limits.
    for _ in range(51):
        record_event(runtime.stores, cast.acme, "login_failed", anonymous_actor(LOOPBACK))

    first = acme_admin.get("/admin/audit?action=login_failed")
    older = first.text.split('id="audit-older"')[0].rsplit('href="', 1)[1].split('"')[0]
    second = acme_admin.get(older.replace("&amp;", "&").removeprefix("/t/acme"))

    assert first.text.count("<td>login_failed</td>") == 50
    assert second.status_code == 200
    assert second.text.count("<td>login_failed</td>") == 1
    assert 'id="audit-older"' not in second.text


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("action=explode", "Action 'explode' is not an audit action"),
        ("actor=someone", "Actor 'someone' is neither a user id"),
        ("since=soon", "From 'soon' is not a time"),
        ("until=later", "Before 'later' is not a time"),
        (
            "since=2026-12-02T00:00&until=2026-12-01T00:00",
            (
                "From '2026-12-02T00:00' is not earlier than Before '2026-12-01T00:00'; give a "
                "From time earlier than the Before time"
            ),
        ),
    ],
)
def test_audit_page_bad_filter_is_400(acme_admin: WebUser, query: str, named: str) -> None:
    page = acme_admin.get(f"/admin/audit?{query}")
    error = page.text.split('id="audit-error"')[1].split("</section>")[0]

    assert page.status_code == 400
    assert named in unescape(error)
    for name in ("since", "until", "actor", "action"):
        assert f"{name} '" not in unescape(error), name


def test_audit_page_export(acme_admin: WebUser, cast: Cast) -> None:
    response = acme_admin.get("/admin/audit/export?action=login")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    [line] = response.text.splitlines()
    assert json.loads(line)["actor"] == str(cast.acme_admin.user_id)


@pytest.mark.parametrize("path", ["/admin/audit", "/admin/audit/export"])
def test_audit_page_member_gets_403(acme_member: WebUser, path: str) -> None:
    assert acme_member.get(path).status_code == 403


def test_audit_page_shows_no_other_tenant(
    acme_admin: WebUser, client: httpx.Client, cast: Cast
) -> None:
    post_login(client, "/t/globex", cast.globex_member.email)

    page = acme_admin.get("/admin/audit?action=login")

    assert cast.globex_member.email not in page.text
    assert str(cast.globex_member.user_id) not in page.text
