"""Logging in through the web UI with httpx, as a browser would, and reading pages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import unescape

import httpx

from tests.conftest import PASSWORD, Member

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]*)"')
SESSION_COOKIE = "strongroom_session"


ERROR_DETAIL = re.compile(r'<p id="error-detail"[^>]*>([^<]*)</p>')


def error_detail(html: str) -> str:
    """Return the message of an error page as a person reads it, without HTML escapes."""
    found = ERROR_DETAIL.search(html)
    assert found, "the page shows no error message"
    return unescape(found.group(1))


def csrf_of(html: str) -> str:
    found = CSRF_META.search(html) or CSRF_FIELD.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def login_form(client: httpx.Client, base: str, **headers: str) -> str:
    """Open the login page and return its CSRF token; the client keeps the login cookie."""
    page = client.get(f"{base}/login", headers=headers)
    assert page.status_code == 200, page.text
    return csrf_of(page.text)


def post_login(
    client: httpx.Client, base: str, email: str, password: str = PASSWORD, **headers: str
) -> httpx.Response:
    token = login_form(client, base, **headers)
    return client.post(
        f"{base}/login",
        data={"email": email, "password": password, "csrf_token": token, "next": ""},
        headers=headers,
    )


@dataclass
class WebUser:
    """A member signed in through the login form, with the client that stores its cookie."""

    member: Member
    client: httpx.Client
    base: str
    csrf: str

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        return self.client.get(f"{self.base}{path}", **kwargs)  # type: ignore[arg-type]

    def post(self, path: str, data: dict | None = None, **kwargs: object) -> httpx.Response:
        form = {"csrf_token": self.csrf, **(data or {})}
        return self.client.post(f"{self.base}{path}", data=form, **kwargs)  # type: ignore[arg-type]

    def upload(self, path: str, content: bytes) -> httpx.Response:
        return self.client.put(
            f"{self.base}/upload/{path}", content=content, headers={"X-CSRF-Token": self.csrf}
        )

    @property
    def cookie(self) -> str:
        return self.client.cookies[SESSION_COOKIE]


def sign_in(server_url: str, member: Member) -> WebUser:
    client = httpx.Client(base_url=server_url, timeout=30)
    base = f"/t/{member.tenant.slug}"
    response = post_login(client, base, member.email)
    assert response.status_code == 303, response.text
    files = client.get(f"{base}/files/")
    assert files.status_code == 200, files.text
    return WebUser(member, client, base, csrf_of(files.text))
