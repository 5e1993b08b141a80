"""Text values with the NUL character get a 400 on every backend, never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Cast

NUL_NAME = "laptop\u0000name"


@pytest.mark.parametrize(
    ("method", "route", "body"),
    [
        ("POST", "tokens", {"name": NUL_NAME}),
        ("POST", "me/app-passwords", {"name": NUL_NAME}),
        ("POST", "upload-requests", {"path": "inbox", "title": NUL_NAME}),
        ("POST", "guests", {"email": "gus\u0000@partner.example"}),
        ("PATCH", "settings", {"display_name": NUL_NAME}),
    ],
)
def test_nul_in_text_is_400(
    client: httpx.Client, cast: Cast, method: str, route: str, body: dict
) -> None:
    admin = cast.acme_admin

    response = client.request(method, admin.url(route), json=body, headers=admin.headers)

    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "NUL" in response.json()["detail"]
