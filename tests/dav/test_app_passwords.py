"""App passwords: made through the API and the command line, revoked, and kept within their tenant."""

from __future__ import annotations

import base64
import re

import httpx
import pytest

from strongroom.runtime import Runtime
from tests.conftest import PASSWORD, Cast, LiveServer
from tests.dav.conftest import FAILURES_PER_MINUTE, DavUser, add_app_password
from tests.services.strongroom import StrongroomProcess

UUID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def propfind(client: httpx.Client, url: str, auth: httpx.Auth | None = None) -> httpx.Response:
    return client.request("PROPFIND", url, headers={"Depth": "0"}, auth=auth)


def test_app_password_api_lifecycle(client: httpx.Client, cast: Cast, live_server: LiveServer) -> None:
    member = cast.acme_member
    dav_root = f"/t/{member.tenant.slug}/dav/"

    created = client.post(
        member.url("me/app-passwords"), json={"name": "laptop"}, headers=member.headers
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "laptop"
    assert body["last_used"] is None
    auth = httpx.BasicAuth(member.email, body["password"])

    assert propfind(client, dav_root, auth).status_code == 207
    listing = client.get(member.url("me/app-passwords"), headers=member.headers).json()
    assert [item["id"] for item in listing["items"]] == [body["id"]]
    assert "password" not in listing["items"][0]
    assert listing["items"][0]["last_used"] is not None

    revoked = client.delete(member.url(f"me/app-passwords/{body['id']}"), headers=member.headers)
    assert revoked.status_code == 200
    assert revoked.json()["revoked"] is not None
    assert propfind(client, dav_root, auth).status_code == 401


def test_app_password_revoke_by_other_user(client: httpx.Client, cast: Cast) -> None:
    owner, other = cast.acme_member, cast.acme_admin
    created = client.post(owner.url("me/app-passwords"), json={}, headers=owner.headers).json()

    response = client.delete(other.url(f"me/app-passwords/{created['id']}"), headers=other.headers)

    assert response.status_code == 404
    listing = client.get(owner.url("me/app-passwords"), headers=owner.headers).json()
    assert listing["items"][0]["revoked"] is None


def test_app_password_revoke_malformed_id(client: httpx.Client, cast: Cast) -> None:
    member = cast.acme_member
    response = client.delete(member.url("me/app-passwords/not-an-id"), headers=member.headers)
    assert response.status_code == 404
    assert "not-an-id" in response.json()["detail"]


@pytest.mark.every_level
def test_app_password_of_other_tenant(
    client: httpx.Client, runtime: Runtime, cast: Cast, live_server: LiveServer
) -> None:
    # admin@acme.test is a user in both tenants, so only the tenant separates the two passwords.
    globex_admin = add_app_password(runtime, cast.globex_admin, live_server)
    acme_root = f"/t/{cast.acme.slug}/dav/"

    other_tenant = propfind(client, acme_root, globex_admin.auth)
    unknown = propfind(client, acme_root, httpx.BasicAuth(globex_admin.email, "x" * 32))

    assert other_tenant.status_code == 401
    assert unknown.status_code == 401
    assert other_tenant.json()["detail"] == unknown.json()["detail"]
    assert other_tenant.headers["WWW-Authenticate"] == unknown.headers["WWW-Authenticate"]
    assert propfind(client, globex_admin.url(), globex_admin.auth).status_code == 207


def test_app_password_of_other_user(client: httpx.Client, acme_dav: DavUser, cast: Cast) -> None:
    someone_else = httpx.BasicAuth(cast.acme_admin.email, acme_dav.password)
    response = propfind(client, acme_dav.url(), someone_else)
    assert response.status_code == 401


def test_account_password_is_not_app_password(client: httpx.Client, acme_dav: DavUser) -> None:
    response = propfind(client, acme_dav.url(), httpx.BasicAuth(acme_dav.email, PASSWORD))
    assert response.status_code == 401


def test_api_token_is_not_app_password(client: httpx.Client, acme_dav: DavUser) -> None:
    token_as_password = httpx.BasicAuth(acme_dav.email, acme_dav.member.token)
    as_password = propfind(client, acme_dav.url(), token_as_password)
    as_bearer = client.request("PROPFIND", acme_dav.url(), headers=acme_dav.member.headers)
    assert as_password.status_code == 401
    assert as_bearer.status_code == 401


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no separator").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:password").decode(),
        "Basic " + base64.b64encode(b"not an address:password").decode(),
        "Basic " + base64.b64encode(b"member@acme.test:" + b"x" * 500).decode(),
        "Digest username=member@acme.test",
        "Basic",
    ],
)
def test_malformed_credentials_get_401(client: httpx.Client, acme_dav: DavUser, header: str) -> None:
    response = client.request("PROPFIND", acme_dav.url(), headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_dav_without_tenant(client: httpx.Client, acme_dav: DavUser) -> None:
    response = client.request("PROPFIND", "/dav/", auth=acme_dav.auth)
    assert response.status_code == 404
    assert "/t/{slug}/dav/" in response.json()["detail"]


def test_failed_logins_rate_limited(
    client: httpx.Client, acme_dav: DavUser, globex_dav: DavUser
) -> None:
    wrong = httpx.BasicAuth(acme_dav.email, "wrong app password")
    for _ in range(FAILURES_PER_MINUTE):
        assert propfind(client, acme_dav.url(), wrong).status_code == 401

    limited = propfind(client, acme_dav.url(), acme_dav.auth)

    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    # The count is per tenant: the same address still logs in to another tenant.
    assert propfind(client, globex_dav.url(), globex_dav.auth).status_code == 207


def test_requests_without_credentials_not_counted(client: httpx.Client, acme_dav: DavUser) -> None:
    for _ in range(FAILURES_PER_MINUTE + 1):
        assert propfind(client, acme_dav.url()).status_code == 401
    assert propfind(client, acme_dav.url(), acme_dav.auth).status_code == 207


def test_cli_app_password_create(strongroom_process: StrongroomProcess) -> None:
    process = strongroom_process
    # Rich fits tables to the terminal; without one it assumes 80 columns and cuts ids short.
    process.env["COLUMNS"] = "250"
    process.make_member("acme", "alice@acme.test")

    created = process.cli("app-password", "create", "acme", "alice@acme.test", "--name", "phone")

    assert created.returncode == 0, created.stderr
    lines = created.stdout.splitlines()
    assert len(lines) == 1
    password = lines[0]
    listed = process.cli("app-password", "list", "acme", "alice@acme.test")
    assert "phone" in listed.stdout
    assert password not in listed.stdout

    process.start()
    url = f"{process.url}/t/acme/dav/"
    auth = httpx.BasicAuth("alice@acme.test", password)
    response = httpx.request("PROPFIND", url, headers={"Depth": "0"}, auth=auth, timeout=30)
    assert response.status_code == 207

    row = next(line for line in listed.stdout.splitlines() if "phone" in line)
    app_password_id = UUID_PATTERN.findall(row)[0]
    revoked = process.cli("app-password", "revoke", "acme", app_password_id)
    assert revoked.returncode == 0, revoked.stderr
    response = httpx.request("PROPFIND", url, headers={"Depth": "0"}, auth=auth, timeout=30)
    assert response.status_code == 401


def test_cli_app_password_unknown_user(strongroom_process: StrongroomProcess) -> None:
    process = strongroom_process
    process.cli("tenant", "create", "acme")

    created = process.cli("app-password", "create", "acme", "nobody@acme.test")

    assert created.returncode == 1
    assert created.stdout == ""
    assert "nobody@acme.test" in created.stderr


def test_app_passwords_closed_with_webdav_module(client: httpx.Client, cast: Cast) -> None:
    member, admin = cast.acme_member, cast.acme_admin
    switched = client.patch(admin.url("modules"), headers=admin.headers, json={"webdav": False})

    created = client.post(
        member.url("me/app-passwords"), headers=member.headers, json={"name": "laptop"}
    )
    listed = client.get(member.url("me/app-passwords"), headers=member.headers)

    assert switched.status_code == 200
    assert created.status_code == 403
    assert listed.status_code == 403
