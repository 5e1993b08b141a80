"""Security headers, cookie flags and CSRF checks of the web UI, over plain HTTP."""

from __future__ import annotations

import httpx
import pytest

from strongroom.runtime import Runtime
from tests.conftest import Cast, LiveServer
from tests.web.helpers import SESSION_COOKIE, WebUser, login_form, post_login

EXPECTED_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}
SIGNED_IN_PAGES = [
    "/files/",
    "/files/docs",
    "/files/docs/note.txt",
    "/trash",
    "/account",
    "/admin/users",
    "/admin/settings",
    "/admin/usage",
    "/files/missing",
    "/download/docs/note.txt",
    "/static/app.js",
    "/branding.css",
]


def check_headers(response: httpx.Response) -> None:
    policy = response.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in policy, response.request.url
    assert "unsafe-inline" not in policy
    assert "script-src 'self'" in policy or "default-src 'none'; sandbox" in policy
    for name, value in EXPECTED_HEADERS.items():
        assert response.headers.get(name) == value, (response.request.url, name)


def test_signed_in_pages_send_security_headers(acme_admin: WebUser) -> None:
    assert acme_admin.upload("docs/note.txt", b"some words").status_code == 201

    for path in SIGNED_IN_PAGES:
        response = acme_admin.get(path)
        assert response.status_code in (200, 404), (path, response.status_code)
        check_headers(response)


def test_signed_out_pages_send_security_headers(client: httpx.Client, cast: Cast) -> None:
    for path in ["/t/acme/login", "/t/acme/files/", "/t/acme/static/app.js", "/login"]:
        response = client.get(path)
        check_headers(response)


def test_pages_are_not_cached(acme_admin: WebUser) -> None:
    response = acme_admin.get("/files/")

    assert response.headers["cache-control"] == "no-store"


def test_download_forbids_scripts(acme_admin: WebUser) -> None:
    acme_admin.upload("page.html", b"<script>alert(1)</script>")

    response = acme_admin.get("/download/page.html")

    assert response.headers["content-type"] == "application/octet-stream"
    assert "sandbox" in response.headers["content-security-policy"]
    assert response.headers["content-disposition"].startswith("attachment")


def test_session_cookie_flags(client: httpx.Client, cast: Cast) -> None:
    response = post_login(client, "/t/acme", cast.acme_member.email)

    cookie = next(
        value for name, value in response.headers.multi_items()
        if name == "set-cookie" and value.startswith(SESSION_COOKIE)
    )
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/t/acme" in cookie
    assert "Secure" not in cookie


def test_cookies_secure_behind_https_proxy(client: httpx.Client, cast: Cast) -> None:
    # uvicorn trusts X-Forwarded-Proto from 127.0.0.1, as from a proxy that ends TLS there.
    response = client.get("/t/acme/login", headers={"X-Forwarded-Proto": "https"})

    assert "Secure" in response.headers["set-cookie"]


def test_cookies_secure_when_set(client: httpx.Client, cast: Cast, runtime: Runtime) -> None:
    runtime.settings.secure_cookies = True

    response = client.get("/t/acme/login")

    assert "Secure" in response.headers["set-cookie"]


def test_host_form_cookie_path_is_root(client: httpx.Client, cast: Cast) -> None:
    host = {"Host": "acme.strongroom.test"}

    response = post_login(client, "", cast.acme_member.email, **host)

    assert response.status_code == 303
    assert "Path=/;" in response.headers["set-cookie"]
    assert client.get("/files/", headers=host).status_code == 200


# CSRF -----------------------------------------------------------------------------------


def test_form_without_token_gets_403_page(acme_member: WebUser) -> None:
    acme_member.upload("keep.txt", b"keep me")

    response = acme_member.client.post(f"{acme_member.base}/delete/keep.txt", data={})

    assert response.status_code == 403
    assert "text/html" in response.headers["content-type"]
    assert "security token" in response.text
    assert acme_member.get("/files/keep.txt").status_code == 200


def test_form_with_wrong_token_gets_403(acme_member: WebUser) -> None:
    acme_member.upload("keep.txt", b"keep me")

    response = acme_member.client.post(
        f"{acme_member.base}/delete/keep.txt", data={"csrf_token": "forged"}
    )

    assert response.status_code == 403
    assert acme_member.get("/files/keep.txt").status_code == 200


def test_token_of_another_session_gets_403(acme_member: WebUser, acme_admin: WebUser) -> None:
    acme_member.upload("keep.txt", b"keep me")

    response = acme_member.client.post(
        f"{acme_member.base}/delete/keep.txt", data={"csrf_token": acme_admin.csrf}
    )

    assert response.status_code == 403


def test_upload_without_token_header_gets_403(acme_member: WebUser) -> None:
    response = acme_member.client.put(f"{acme_member.base}/upload/new.txt", content=b"data")

    assert response.status_code == 403
    assert acme_member.get("/files/new.txt").status_code == 404


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}],
)
def test_cross_site_request_gets_403(acme_member: WebUser, headers: dict[str, str]) -> None:
    acme_member.upload("keep.txt", b"keep me")

    response = acme_member.post("/delete/keep.txt", headers=headers)

    assert response.status_code == 403
    assert acme_member.get("/files/keep.txt").status_code == 200


def test_same_origin_request_passes(acme_member: WebUser, live_server: LiveServer) -> None:
    acme_member.upload("gone.txt", b"bye")
    origin = live_server.url

    response = acme_member.post(
        "/delete/gone.txt", headers={"Origin": origin, "Sec-Fetch-Site": "same-origin"}
    )

    assert response.status_code == 303


def test_login_without_form_cookie_gets_403(client: httpx.Client, cast: Cast) -> None:
    token = login_form(client, "/t/acme")
    client.cookies.clear()

    response = client.post(
        "/t/acme/login",
        data={"email": cast.acme_member.email, "password": "x" * 20, "csrf_token": token},
    )

    assert response.status_code == 403
    assert SESSION_COOKIE not in response.cookies


def test_login_with_wrong_form_token_gets_403(client: httpx.Client, cast: Cast) -> None:
    login_form(client, "/t/acme")

    response = client.post(
        "/t/acme/login",
        data={"email": cast.acme_member.email, "password": "x" * 20, "csrf_token": "guess"},
    )

    assert response.status_code == 403
