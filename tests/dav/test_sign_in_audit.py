"""WebDAV sign-ins in the audit trail: every failure, a success once an hour per app password."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
from sqlalchemy import update

from strongroom.identity.models import AppPasswordRow
from strongroom.runtime import Runtime
from strongroom.tenancy.models import utcnow
from tests.conftest import Cast, Member
from tests.dav.conftest import FAILURES_PER_MINUTE, DavUser


def propfind(client: httpx.Client, url: str, auth: httpx.Auth | None = None) -> httpx.Response:
    return client.request("PROPFIND", url, headers={"Depth": "0"}, auth=auth)


def trail(client: httpx.Client, admin: Member, action: str) -> list[dict[str, Any]]:
    response = client.get(admin.url("audit"), headers=admin.headers, params={"action": action})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def age_sign_in_record(runtime: Runtime, dav: DavUser, hours: float) -> None:
    """Move the app password's last recorded sign-in `hours` into the past."""
    with runtime.stores.session(dav.tenant, write=True) as session:
        session.execute(
            update(AppPasswordRow).values(sign_in_recorded_at=utcnow() - dt.timedelta(hours=hours))
        )


def test_dav_sign_in_recorded_once_per_hour(
    runtime: Runtime, client: httpx.Client, cast: Cast, acme_dav: DavUser
) -> None:
    for _ in range(3):
        assert propfind(client, acme_dav.url(), acme_dav.auth).status_code == 207

    [event] = trail(client, cast.acme_admin, "dav_login")
    assert event["actor"] == str(acme_dav.member.user_id)
    assert event["target"]["type"] == "app_password"
    assert event["new"] == {"name": "tests", "interval_seconds": 3600}
    assert acme_dav.password not in str(event)

    age_sign_in_record(runtime, acme_dav, 0.5)
    assert propfind(client, acme_dav.url(), acme_dav.auth).status_code == 207
    assert len(trail(client, cast.acme_admin, "dav_login")) == 1

    age_sign_in_record(runtime, acme_dav, 1.5)
    assert propfind(client, acme_dav.url(), acme_dav.auth).status_code == 207
    assert len(trail(client, cast.acme_admin, "dav_login")) == 2


def test_dav_failed_sign_in_names_known_account(
    client: httpx.Client, cast: Cast, acme_dav: DavUser
) -> None:
    wrong = "not the app password"

    assert propfind(client, acme_dav.url(), httpx.BasicAuth(acme_dav.email, wrong)).status_code == 401
    unknown = httpx.BasicAuth("nobody@acme.test", acme_dav.password)
    assert propfind(client, acme_dav.url(), unknown).status_code == 401

    events = trail(client, cast.acme_admin, "dav_login_failed")
    newest, oldest = events
    assert oldest["actor"] == "anonymous"
    assert oldest["target"] == {"type": "user", "id": str(acme_dav.member.user_id)}
    assert oldest["new"] == {"method": "app_password", "known_account": True}
    assert newest["target"] is None
    assert newest["new"]["known_account"] is False
    for event in events:
        assert wrong not in str(event)
        assert acme_dav.password not in str(event)
        assert "nobody@acme.test" not in str(event)


def test_dav_request_without_credentials_not_recorded(
    client: httpx.Client, cast: Cast, acme_dav: DavUser
) -> None:
    assert propfind(client, acme_dav.url()).status_code == 401

    assert trail(client, cast.acme_admin, "dav_login_failed") == []


def test_dav_failures_past_the_limit_not_recorded(
    client: httpx.Client, cast: Cast, acme_dav: DavUser
) -> None:
    wrong = httpx.BasicAuth(acme_dav.email, "wrong app password")
    for _ in range(FAILURES_PER_MINUTE):
        assert propfind(client, acme_dav.url(), wrong).status_code == 401
    for _ in range(3):
        assert propfind(client, acme_dav.url(), wrong).status_code == 429

    assert len(trail(client, cast.acme_admin, "dav_login_failed")) == FAILURES_PER_MINUTE


def test_dav_sign_in_events_stay_in_tenant(
    client: httpx.Client, cast: Cast, acme_dav: DavUser
) -> None:
    assert propfind(client, acme_dav.url(), acme_dav.auth).status_code == 207
    bad = httpx.BasicAuth(acme_dav.email, "wrong app password")
    assert propfind(client, acme_dav.url(), bad).status_code == 401

    assert len(trail(client, cast.acme_admin, "dav_login")) == 1
    assert trail(client, cast.globex_admin, "dav_login") == []
    assert trail(client, cast.globex_admin, "dav_login_failed") == []
